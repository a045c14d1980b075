"""Partners' webhook endpoints, their signing secrets and the deliveries to them.

A partner registers one endpoint (``PUT /api/v1/webhooks``) and receives a secret, shown once. Every
notification is POSTed there with ``KnowLedger-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
``HMAC-SHA256(secret, "<t>.<raw body>")`` (:func:`signature_header`; the receiver's side is
:func:`verify_signature` and ``docs/webhooks.md``). The timestamp is signed with the body, so a captured
request replayed later fails the receiver's tolerance check.

Deliveries are rows of the webhook outbox (``webhook_delivery``), written with the change they report
(:mod:`backend.services.notifications`) and sent by
:class:`backend.services.webhook_delivery.WebhookDeliverer`. Those that kept failing are ``dead``: listed
for the operator (and the partner) and queued again on request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import socket
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from backend.core.security import new_secret
from backend.disclosures import DeliveryState, WebhookDelivery, WebhookEndpoint
from backend.errors import NotFound, Unprocessable
from backend.models import iso, utcnow
from backend.schemas.webhooks import DeliveryList, DeliveryPublic, Replayed, WebhookEndpointPublic
from backend.services.directory import PartnerAuth
from backend.services.notifications import webhook_delivery

SIGNATURE_HEADER = "KnowLedger-Signature"
#: How old a signed timestamp a receiver should accept (seconds); see docs/webhooks.md.
DEFAULT_TOLERANCE_S = 300


# ------------------------------------------------------------------------------------------ signatures
def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``HMAC-SHA256(secret, "<timestamp>.<body>")`` in hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str | Sequence[str], body: bytes, timestamp: int | None = None) -> str:
    """The ``KnowLedger-Signature`` value for ``body``: ``t=<unix seconds>,v1=<hex>``, with one ``v1`` per
    secret (the current one first; the previous one too while a rotation's overlap lasts)."""
    t = int(time.time()) if timestamp is None else timestamp
    secrets = [secret] if isinstance(secret, str) else list(secret)
    return ",".join([f"t={t}", *(f"v1={sign(s, t, body)}" for s in secrets)])


def private_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host``'s address when it is an IP literal (or ``localhost``) that is not a public unicast address:
    loopback, private, link-local (cloud metadata at 169.254.169.254), shared, reserved, multicast or
    unspecified. ``None`` for a public address or a name (names are checked when resolved, at delivery)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return ipaddress.ip_address("127.0.0.1")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return None if address.is_global else address


def resolves_privately(host: str, port: int) -> str | None:
    """The first non-public address ``host`` resolves to (as text), or ``None`` when every address is
    public. A name that does not resolve is left to the HTTP client, which reports it."""
    literal = private_address(host)
    if literal is not None:
        return str(literal)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for info in infos:
        address = private_address(str(info[4][0]))
        if address is not None:
            return str(address)
    return None


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None
) -> bool:
    """The receiver's check: a ``v1`` signature of ``t`` and ``body`` under ``secret``, with ``t`` within
    ``tolerance_s`` of ``now``. Constant-time comparison."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, t, body)
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


# ------------------------------------------------------------------------------------------ the service
def _public(endpoint: WebhookEndpoint, secret: str | None = None) -> WebhookEndpointPublic:
    overlap = len(endpoint.signing_secrets(utcnow())) > 1
    return WebhookEndpointPublic(
        partner_id=endpoint.partner_id,
        url=endpoint.url,
        created_at=iso(endpoint.created_at),
        updated_at=iso(endpoint.updated_at),
        secret=secret,
        previous_secret_valid_until=(
            iso(endpoint.previous_secret_until) if overlap and endpoint.previous_secret_until else None
        ),
    )


def delivery_public(d: WebhookDelivery) -> DeliveryPublic:
    assert d.id is not None
    pending = d.state == DeliveryState.PENDING
    return DeliveryPublic(
        id=d.id,
        event_id=d.event_id,
        event=d.event,
        partner_id=d.partner_id,
        conversion_id=d.conversion_id,
        state=DeliveryState(d.state).value,
        attempts=d.attempts,
        next_attempt_at=_iso_ms(d.next_attempt_ms) if pending else None,
        last_status=d.last_status,
        last_error=d.last_error,
        created_at=iso(d.created_at),
        delivered_at=None if d.delivered_at is None else iso(d.delivered_at),
    )


def _iso_ms(ms: int) -> str:
    import datetime as dt

    return iso(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))


def _due_again() -> dict[str, object]:
    """A delivery queued again: pending, due now, with a fresh budget of attempts."""
    return {
        "state": DeliveryState.PENDING,
        "attempts": 0,
        "next_attempt_ms": int(time.time() * 1000),
        "updated_at": utcnow(),
    }


#: How long the replaced secret still signs deliveries after a rotation, unless the partner says otherwise.
DEFAULT_ROTATION_OVERLAP_S = 24 * 3600
MAX_ROTATION_OVERLAP_S = 7 * 24 * 3600


class WebhookService:
    def __init__(self, *, allow_http: bool, allow_private: bool = False) -> None:
        self._allow_http = allow_http
        self._allow_private = allow_private

    # -------------------------------------------------------------- the partner's endpoint
    def _check_url(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            port = parts.port  # raises on a port that is not a number in range
        except ValueError as exc:
            raise Unprocessable(f"url: not a URL ({exc})", field="url") from None
        schemes = ("https", "http") if self._allow_http else ("https",)
        if parts.scheme.lower() not in schemes:
            raise Unprocessable(
                f"url: the endpoint must use {' or '.join(schemes)}, got {parts.scheme or 'no scheme'}",
                field="url",
            )
        if not parts.hostname or any(c.isspace() for c in url):
            raise Unprocessable("url: expected scheme://host[:port]/path with no spaces", field="url")
        if parts.username is not None or parts.password is not None:
            raise Unprocessable(
                "url: no credentials in the URL; verify the signature instead (docs/webhooks.md)", field="url"
            )
        if parts.fragment:
            raise Unprocessable("url: a fragment is never sent to a server; remove it", field="url")
        del port
        if not self._allow_private and (address := private_address(parts.hostname)) is not None:
            raise Unprocessable(
                f"url: {parts.hostname} is a non-public address ({address}); webhooks go to the partner's "
                "public endpoint (the operator allows private ones with KNOWLEDGER_WEBHOOK_ALLOW_PRIVATE=1)",
                field="url",
            )
        return url

    def configure(
        self, session: Session, partner: PartnerAuth, url: str
    ) -> tuple[WebhookEndpointPublic, bool]:
        """Register or change the partner's endpoint. Returns ``(endpoint, created)``; a new endpoint comes
        with its secret (shown once), a changed URL keeps the secret it had."""
        url = self._check_url(url)
        endpoint = session.get(WebhookEndpoint, partner.id)
        if endpoint is not None:
            endpoint.url = url
            endpoint.updated_at = utcnow()
            session.add(endpoint)
            session.commit()
            return _public(endpoint), False
        secret = new_secret("whsec")
        endpoint = WebhookEndpoint(partner_id=partner.id, url=url, secret=secret)
        session.add(endpoint)
        session.commit()
        return _public(endpoint, secret), True

    @staticmethod
    def _endpoint(session: Session, partner: PartnerAuth) -> WebhookEndpoint:
        endpoint = session.get(WebhookEndpoint, partner.id)
        if endpoint is None:
            raise NotFound("no webhook endpoint is registered: PUT /api/v1/webhooks registers one")
        return endpoint

    def get(self, session: Session, partner: PartnerAuth) -> WebhookEndpointPublic:
        return _public(self._endpoint(session, partner))

    def remove(self, session: Session, partner: PartnerAuth) -> WebhookEndpointPublic:
        """Stop notifications: changes from now on are not queued; queued ones go dead at their next
        attempt (the operator can replay them once an endpoint is registered again)."""
        endpoint = self._endpoint(session, partner)
        shown = _public(endpoint)
        session.delete(endpoint)
        session.commit()
        return shown

    def rotate_secret(
        self, session: Session, partner: PartnerAuth, overlap_s: int = DEFAULT_ROTATION_OVERLAP_S
    ) -> WebhookEndpointPublic:
        """A new signing secret (shown once), used from the next attempt on. For ``overlap_s`` seconds each
        delivery carries a second ``v1`` signature made with the secret it replaced, so the receiver can
        switch to the new secret at its own pace; 0 ends the old secret at once."""
        if not 0 <= overlap_s <= MAX_ROTATION_OVERLAP_S:
            raise Unprocessable(
                f"overlap_s: expected 0 to {MAX_ROTATION_OVERLAP_S} seconds, got {overlap_s}",
                field="overlap_s",
            )
        endpoint = self._endpoint(session, partner)
        now = utcnow()
        endpoint.previous_secret = endpoint.secret if overlap_s else None
        endpoint.previous_secret_until = now + dt.timedelta(seconds=overlap_s) if overlap_s else None
        endpoint.secret = new_secret("whsec")
        endpoint.updated_at = now
        session.add(endpoint)
        session.commit()
        return _public(endpoint, endpoint.secret)

    def ping(self, session: Session, partner: PartnerAuth) -> DeliveryPublic:
        """Queue a ``ping`` notification to the partner's endpoint (to test a receiver)."""
        self._endpoint(session, partner)
        row = webhook_delivery(partner.id, "ping", {"message": "a test notification"}, None, utcnow())
        session.add(row)
        session.commit()
        session.refresh(row)
        return delivery_public(row)

    # -------------------------------------------------------------- deliveries
    @staticmethod
    def deliveries(
        session: Session,
        partner_id: str | None,
        state: str | None,
        limit: int,
        offset: int,
    ) -> DeliveryList:
        """Deliveries, newest first (one partner's, or everyone's for the operator)."""
        query = select(WebhookDelivery)
        counted = select(func.count()).select_from(WebhookDelivery)
        if partner_id is not None:
            query = query.where(WebhookDelivery.partner_id == partner_id)
            counted = counted.where(col(WebhookDelivery.partner_id) == partner_id)
        if state is not None:
            query = query.where(WebhookDelivery.state == state)
            counted = counted.where(col(WebhookDelivery.state) == state)
        rows = session.exec(query.order_by(col(WebhookDelivery.id).desc()).offset(offset).limit(limit)).all()
        total = int(session.exec(counted).one())
        return DeliveryList(total=total, items=[delivery_public(r) for r in rows])

    @staticmethod
    def replay(session: Session, delivery_id: int, partner_id: str | None) -> DeliveryPublic:
        """Queue a delivery again, due now, with a fresh budget of attempts (a delivered one is sent again:
        the receiver drops it by its event id if it has it)."""
        row = session.get(WebhookDelivery, delivery_id)
        if row is None or (partner_id is not None and row.partner_id != partner_id):
            raise NotFound(f"unknown webhook delivery {delivery_id}")
        session.execute(
            update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id).values(**_due_again())
        )
        session.commit()
        session.refresh(row)
        return delivery_public(row)

    @staticmethod
    def replay_dead(session: Session, partner_id: str | None) -> Replayed:
        """Queue every dead delivery again (one partner's, or all)."""
        stmt = (
            update(WebhookDelivery)
            .where(col(WebhookDelivery.state) == DeliveryState.DEAD)
            .values(**_due_again())
        )
        if partner_id is not None:
            stmt = stmt.where(col(WebhookDelivery.partner_id) == partner_id)
        n = session.execute(stmt).rowcount  # type: ignore[attr-defined]
        session.commit()
        return Replayed(replayed=int(n or 0))
