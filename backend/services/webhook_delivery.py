"""The webhook deliverer: sends the webhook outbox to partners' endpoints, at least once.

One round (:meth:`WebhookDeliverer.run_once`):

1. **claim** the pending deliveries that are due: each claim moves the row's ``next_attempt_ms`` a lease
   ahead, conditioned on the value read, so two deliverers (two processes on one PostgreSQL) never send the
   same attempt, and a process that dies mid-attempt leaves a row that is due again when its lease ends;
2. **send** each, signed with the partner's current secret and a fresh timestamp, a few at a time (a slow
   endpoint does not hold the others back), one conversion's notifications in order (a retry can still
   overtake: receivers go by the conversion's state, not by arrival);
3. **record** the outcome: a 2xx is ``delivered``; anything else (another status, a timeout, a refused
   connection) is retried after ``base × 2^(attempt−1)`` seconds, capped at :data:`MAX_BACKOFF_S`, with
   full jitter in its upper half (so endpoints coming back are not hit by every retry at once), and
   ``dead`` after the last attempt. Dead rows stay for the operator to see and replay.

A delivery is only ever marked delivered after its endpoint answered 2xx; a crash between the answer and
the record sends it again (at least once): receivers drop repeats by the event id.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.disclosures import DeliveryState, WebhookDelivery, WebhookEndpoint
from backend.models import utcnow
from backend.observability import Metrics
from backend.services.webhooks import SIGNATURE_HEADER, resolves_privately, signature_header
from backend.services.worker import PeriodicWorker

log = logging.getLogger("knowledger.webhooks")

#: The longest wait between two attempts.
MAX_BACKOFF_S = 6 * 3600
#: Deliveries claimed per round, and sent at once.
BATCH = 100
CONCURRENCY = 8
USER_AGENT = "KnowLedger-Webhooks/1"


def backoff_s(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """The wait after failed attempt number ``attempt`` (1-based): uniform in [d/2, d] for
    d = min(base × 2^(attempt−1), :data:`MAX_BACKOFF_S`)."""
    delay = min(base_s * 2 ** max(0, attempt - 1), MAX_BACKOFF_S)
    return (rng or random).uniform(delay / 2, delay)


@dataclass(frozen=True)
class _Claimed:
    id: int
    partner_id: str
    conversion_id: int | None
    body: str
    event_id: str
    event: str
    attempts: int
    created_ms: int


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    error: str | None
    #: False when trying again cannot help (the partner removed its endpoint).
    retry: bool = True

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookDeliverer(PeriodicWorker):
    name = "webhooks"

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        timeout_s: float,
        retry_base_s: float,
        max_attempts: int,
        allow_private: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._allow_private = allow_private
        self._engine = engine
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._retry_base_s = retry_base_s
        self._max_attempts = max_attempts
        self._clock = clock
        self._lease_ms = int((2 * timeout_s + 5) * 1000)
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY * 2),
        )
        self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="knowledger-webhook")

    def run_once(self) -> dict[str, int]:
        """One round; returns how many were delivered, failed (to be retried) and went dead."""
        with self._lock:
            claimed = self._claim()
            stats = {"delivered": 0, "failed": 0, "dead": 0}
            if not claimed:
                self.last_error = None
                return stats
            endpoints = self._endpoints({c.partner_id for c in claimed})
            # one conversion's notifications in order, one after the other; different ones side by side
            groups: dict[object, list[_Claimed]] = {}
            for c in claimed:
                groups.setdefault(
                    c.conversion_id if c.conversion_id is not None else ("ping", c.id), []
                ).append(c)

            def send_in_order(group: list[_Claimed]) -> list[tuple[_Claimed, _Outcome]]:
                return [(c, self._send(c, endpoints.get(c.partner_id))) for c in group]

            for results in self._pool.map(send_in_order, groups.values()):
                for c, outcome in results:
                    stats[self._record(c, outcome)] += 1
            self.last_error = None
            return stats

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)
        self._http.close()

    # ------------------------------------------------------------------ steps
    def _claim(self) -> list[_Claimed]:
        now = int(self._clock() * 1000)
        with Session(self._engine) as s:
            due = s.exec(
                select(WebhookDelivery)
                .where(WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_ms <= now)
                .order_by(col(WebhookDelivery.next_attempt_ms), col(WebhookDelivery.id))
                .limit(BATCH)
            ).all()
            claimed = []
            for d in due:
                assert d.id is not None
                taken = s.execute(
                    update(WebhookDelivery)
                    .where(
                        col(WebhookDelivery.id) == d.id,
                        col(WebhookDelivery.state) == DeliveryState.PENDING,
                        col(WebhookDelivery.next_attempt_ms) == d.next_attempt_ms,
                    )
                    .values(next_attempt_ms=now + self._lease_ms)
                ).rowcount  # type: ignore[attr-defined]
                if taken == 1:
                    created_ms = int(d.created_at.timestamp() * 1000)
                    claimed.append(
                        _Claimed(
                            d.id,
                            d.partner_id,
                            d.conversion_id,
                            d.body,
                            d.event_id,
                            d.event,
                            d.attempts,
                            created_ms,
                        )
                    )
            s.commit()
        return claimed

    def _endpoints(self, partners: set[str]) -> dict[str, tuple[str, list[str]]]:
        now = utcnow()
        with Session(self._engine) as s:
            rows = s.exec(select(WebhookEndpoint).where(col(WebhookEndpoint.partner_id).in_(partners))).all()
        return {e.partner_id: (e.url, e.signing_secrets(now)) for e in rows}

    def _send(self, c: _Claimed, endpoint: tuple[str, list[str]] | None) -> _Outcome:
        if endpoint is None:
            return _Outcome(None, "no webhook endpoint is registered", retry=False)
        url, secret = endpoint
        if not self._allow_private:
            parts = urlsplit(url)
            host = parts.hostname or ""
            address = resolves_privately(host, parts.port or (443 if parts.scheme == "https" else 80))
            if address is not None:
                return _Outcome(
                    None,
                    f"refused: {host} resolves to the non-public address {address} "
                    "(KNOWLEDGER_WEBHOOK_ALLOW_PRIVATE=1 allows it)",
                    retry=False,
                )
        body = c.body.encode()
        headers = {
            "Content-Type": "application/json",
            "KnowLedger-Event-Id": c.event_id,
            "KnowLedger-Event": c.event,
            "KnowLedger-Delivery-Attempt": str(c.attempts + 1),
            SIGNATURE_HEADER: signature_header(secret, body, int(self._clock())),
        }
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return _Outcome(None, f"no answer within {self._timeout_s:g} s")
        except httpx.HTTPError as exc:
            return _Outcome(None, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return _Outcome(response.status_code, None)
        return _Outcome(response.status_code, f"the endpoint answered {response.status_code}")

    def _record(self, c: _Claimed, outcome: _Outcome) -> str:
        attempts = c.attempts + 1
        now = self._clock()
        partner = self._metrics.partner_label(c.partner_id)
        values: dict[str, object] = {
            "attempts": attempts,
            "last_status": outcome.status,
            "last_error": outcome.error,
            "updated_at": utcnow(),
        }
        if outcome.ok:
            result = "delivered"
            values.update(state=DeliveryState.DELIVERED, delivered_at=utcnow())
            self._metrics.webhook_latency.labels(partner).observe(max(0.0, now - c.created_ms / 1000))
        elif not outcome.retry or attempts >= self._max_attempts:
            result = "dead"
            values.update(state=DeliveryState.DEAD)
        else:
            result = "failed"
            values.update(next_attempt_ms=int((now + backoff_s(attempts, self._retry_base_s)) * 1000))
        if result != "delivered":
            log.warning("webhook %s to %s: %s (attempt %d, %s)", c.event_id, c.partner_id, outcome.error,
                        attempts, result)  # fmt: skip
        self._metrics.webhook_deliveries.labels(partner, result).inc()
        with Session(self._engine) as s:
            s.execute(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id) == c.id, col(WebhookDelivery.state) == DeliveryState.PENDING)
                .values(**values)
            )
            s.commit()
        return result


def queue_counts(engine: Engine) -> dict[str, int]:
    """Deliveries waiting (``pending``) and given up (``dead``), over every partner."""
    with Session(engine) as s:
        rows = s.exec(
            select(WebhookDelivery.state, func.count())
            .where(col(WebhookDelivery.state).in_((DeliveryState.PENDING, DeliveryState.DEAD)))
            .group_by(col(WebhookDelivery.state))
        ).all()
    found = {str(state): int(n) for state, n in rows}
    return {state.value: found.get(state.value, 0) for state in (DeliveryState.PENDING, DeliveryState.DEAD)}


class WebhookBacklog(Collector):
    """``knowledger_webhook_queue{partner, state}``: deliveries pending and dead, read when scraped."""

    def __init__(self, engine: Engine, metrics: Metrics) -> None:
        self._engine = engine
        self._metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The series' name, for the registry (so registering reads nothing)."""
        yield GaugeMetricFamily("knowledger_webhook_queue", "", labels=["partner", "state"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "knowledger_webhook_queue",
            "Webhook deliveries waiting (pending) or given up (dead), per partner",
            labels=["partner", "state"],
        )
        counts: dict[tuple[str, str], int] = {}
        try:
            with Session(self._engine) as s:
                rows = s.exec(
                    select(WebhookDelivery.partner_id, WebhookDelivery.state, func.count())
                    .where(col(WebhookDelivery.state).in_((DeliveryState.PENDING, DeliveryState.DEAD)))
                    .group_by(col(WebhookDelivery.partner_id), col(WebhookDelivery.state))
                ).all()
        except Exception as exc:  # the database is away: no series rather than a failed scrape
            log.warning("webhook queue metrics unavailable: %s", str(exc).splitlines()[0])
            return
        for partner_id, state, n in rows:
            key = (self._metrics.partner_label(str(partner_id)), str(state))
            counts[key] = counts.get(key, 0) + int(n)
        for (partner, state), n in sorted(counts.items()):
            family.add_metric([partner, state], n)
        yield family
