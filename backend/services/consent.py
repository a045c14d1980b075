"""Consent: the registrar path (the service writes for a user), the wallet path (the user's wallet signs
EIP-712 and anyone relays), receipts, and each user's current state and history.

A grant's receipt follows the core fields of ISO/IEC TS 27560 and the Kantara Consent Receipt; its
SHA-256 (domain-separated, over canonical JSON) is what the registry stores with the grant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from typing import Any

from sqlmodel import Session, col, select

from backend.chain import (
    PURPOSE_NAMES,
    ChainClient,
    ConsentGrant,
    ConsentRegistryClient,
    ConsentRevocation,
    ConsentTerms,
    Purpose,
    SignedConsentGrant,
    SignedConsentRevocation,
    TxResult,
    Wallet,
    consent_grant_typed_data,
    consent_revocation_typed_data,
    purpose_from_name,
    subject_for_wallet,
    wallet_for_subject,
)
from backend.chain.eip712 import compact
from backend.chain.types import checksum
from backend.core.jsonable import to_jsonable
from backend.core.platform import PLATFORM
from backend.errors import ChainUnavailable, Conflict, NotFound, Unprocessable
from backend.models import ConsentAction, ConsentEvent, Partner, User, iso
from backend.privacy import reference_hash
from backend.schemas.consent import (
    ConsentChange,
    ConsentEventPublic,
    ConsentHistory,
    ConsentState,
    ConsentStateItem,
    GrantRelay,
    PurposeList,
    PurposeNotice,
    ReceiptPublic,
    RevocationRelay,
    TypedDataPublic,
)
from backend.services.gateway import ChainGateway

DAY = 86_400

#: Plain-language notices shown before a user decides (the platform notice is versioned on chain).
PURPOSE_NOTICES: dict[Purpose, dict[str, Any]] = {
    Purpose.PROFILING: {
        "title": "Build a learning profile",
        "notice": "We look at which courses, e-books and audio lectures you study to work out your topics "
        "of interest and your stage of life. The partner never sees your activity, only what we derive "
        "from it, and only while you allow it.",
        "pii_categories": ["learning activity", "derived interests"],
    },
    Purpose.PRODUCT_RECOMMENDATION: {
        "title": "Recommend this partner's products",
        "notice": "We use your learning profile to suggest this partner's financial or insurance products "
        "that fit what you are learning. You see why each product was suggested.",
        "pii_categories": ["derived interests"],
    },
    Purpose.MARKETING_CONTACT: {
        "title": "Let this partner contact you",
        "notice": "The partner may send you offers about its products. You can stop this at any time.",
        "pii_categories": ["contact preference"],
    },
    Purpose.DATA_SHARING: {
        "title": "Share your profile with this partner",
        "notice": "We send your derived learning profile (not your activity) to the partner, under your "
        "pseudonym, so it can tailor its own service.",
        "pii_categories": ["derived interests", "pseudonymous identifier"],
    },
}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def receipt_hash(receipt: dict[str, Any]) -> bytes:
    return reference_hash("receipt", canonical_json(receipt))


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def parse_purpose(name: str) -> Purpose:
    """A purpose by its API name (the routes' path schema admits only these); 422 naming the known ones
    otherwise."""
    purpose = purpose_from_name(name)
    if purpose is None:
        raise Unprocessable(
            f"purpose: unknown purpose {name!r}; expected one of {', '.join(PURPOSE_NAMES.values())}",
            field="purpose",
        )
    return purpose


def get_partner(session: Session, partner_id: str) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"unknown partner {partner_id!r}", partner_id=partner_id)
    return partner


def subject_of(user: User) -> bytes:
    return bytes.fromhex(user.pseudonym.removeprefix("0x"))


def event_public(e: ConsentEvent) -> ConsentEventPublic:
    assert e.id is not None
    return ConsentEventPublic(
        id=e.id,
        partner_id=e.partner_id,
        purpose=e.purpose,
        action=e.action,
        path=e.path,
        receipt_id=e.receipt_id,
        receipt_hash=e.receipt_hash,
        tx_hash=e.tx_hash,
        block_number=e.block_number,
        chain_time=e.chain_time,
        created_at=iso(e.created_at),
    )


def change_public(e: ConsentEvent) -> ConsentChange:
    return ConsentChange(**event_public(e).model_dump(), receipt=e.receipt)


def split_signature(signature: str) -> tuple[bytes, bytes]:
    """A 65-byte ``r‖s‖v`` hex signature → EIP-2098 ``(r, vs)``; a 64-byte one is taken as ``r‖vs``
    (the schema's ``SIGNATURE_PATTERN`` has already checked the hex, the length and ``v``)."""
    raw = bytes.fromhex(signature.removeprefix("0x"))
    if len(raw) == 64:
        return raw[:32], raw[32:]
    v = raw[64] if raw[64] >= 27 else raw[64] + 27
    return compact(v, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"))


class ConsentService:
    """Grants and revocations (registrar and wallet paths), receipts, each learner's state and history."""

    def __init__(
        self,
        gateway: ChainGateway,
        registry: ConsentRegistryClient,
        registrar: Wallet,
        *,
        consent_days: int,
        signature_ttl_s: int,
    ) -> None:
        self._gateway = gateway
        self._registry = registry
        self._registrar = registrar
        self._consent_days = consent_days
        self._signature_ttl_s = signature_ttl_s

    @property
    def _chain(self) -> ChainClient:
        return self._gateway.client

    # ------------------------------------------------------------------ notices
    def purposes(self) -> PurposeList:
        """The purposes and their notices. The texts do not depend on the chain; the platform's notice
        version does: with the chain away it is ``null`` and ``chain_unavailable`` says why (the texts stay
        readable)."""
        unavailable: str | None = None
        try:
            version: int | None = self._gateway.run(
                "reading the platform notice version", self._registry.platform_notice_version
            )
        except ChainUnavailable as exc:
            version = None
            unavailable = exc.message
        return PurposeList(
            platform_notice_version=version,
            **({"chain_unavailable": unavailable} if unavailable else {}),
            purposes=[PurposeNotice(id=PURPOSE_NAMES[p], bit=int(p), **PURPOSE_NOTICES[p]) for p in Purpose],
        )

    def _receipt(
        self, subject: bytes, partner: Partner, purpose: Purpose, terms: ConsentTerms, now: int
    ) -> dict[str, Any]:
        """A consent receipt with the ISO/IEC TS 27560 / Kantara core fields (no personal data: the
        principal is the pseudonym)."""
        notice = PURPOSE_NOTICES[purpose]
        return {
            "version": "ISO/IEC TS 27560:2023; Kantara CR v1.1",
            "receipt_id": "rcpt_" + secrets.token_hex(12),
            "timestamp": _iso(now),
            "jurisdiction": PLATFORM["jurisdiction"],
            "collection_method": "KnowLedger consent API",
            "pii_principal_id": "0x" + subject.hex(),
            "pii_controllers": [
                {"name": PLATFORM["name"], "contact": PLATFORM["contact"], "role": "controller"},
                {"name": partner.name, "address": partner.address, "role": "recipient"},
            ],
            "notice": {
                "platform_notice_version": terms.platform_notice_version,
                "partner_notice_version": terms.partner_notice_version,
                "purpose_notice_sha256": hashlib.sha256(notice["notice"].encode()).hexdigest(),
                "partner_notice_sha256": hashlib.sha256(partner.notice_text.encode()).hexdigest(),
            },
            "services": [
                {
                    "service": f"{partner.name}: {notice['title']}",
                    "purposes": [
                        {
                            "purpose": PURPOSE_NAMES[purpose],
                            "purpose_category": notice["title"],
                            "consent_type": "explicit",
                            "pii_categories": notice["pii_categories"],
                            "primary_purpose": False,
                            "termination": _iso(terms.expires_at),
                            "third_party_disclosure": purpose is Purpose.DATA_SHARING,
                            "third_party_name": partner.name,
                        }
                    ],
                }
            ],
            "sensitive": False,
            "spi_cat": [],
            "chain": {
                "chain_id": self._chain.chain_id,
                "registry": self._registry.address,
                "partner": partner.address,
                "purpose_bit": int(purpose),
            },
        }

    def _expiry(self, now: int, days: int | None) -> int:
        lifetime = min(days or self._consent_days, 390) * DAY
        return now + min(lifetime, self._registry.max_consent_duration() - 60)

    # ------------------------------------------------------------------ registrar path
    def grant(
        self, session: Session, user: User, partner_id: str, purpose_name: str, days: int | None
    ) -> ConsentChange:
        """Grant through the registrar path: the service signs the transaction for the user's pseudonym;
        mined before this returns."""
        purpose = parse_purpose(purpose_name)
        partner = get_partner(session, partner_id)
        if user.wallet:
            raise Conflict(
                "this user consents with their own wallet: sign the EIP-712 grant (POST "
                "/api/v1/me/consents/{partner}/{purpose}/typed-data) and relay it",
                wallet=user.wallet,
            )
        subject = subject_of(user)
        c = self._registry

        def send() -> tuple[TxResult, dict[str, Any], bytes, int]:
            head = self._chain.head()
            terms = c.current_terms(partner.address, purpose, self._expiry(head.timestamp, days))
            if terms.partner_notice_version == 0:
                raise Conflict(f"partner {partner.id!r} has not published a notice yet")
            receipt = self._receipt(subject, partner, purpose, terms, head.timestamp)
            digest = receipt_hash(receipt)
            tx = c.grant(subject, terms, digest, sender=self._registrar)
            return tx, receipt, digest, head.timestamp

        tx, receipt, digest, now = self._gateway.run("granting consent", send)
        event = _record(
            session,
            user.id,
            user.pseudonym,
            partner,
            purpose,
            ConsentAction.GRANT,
            "registrar",
            tx,
            now,
            receipt,
            digest,
        )
        return change_public(event)

    def revoke(self, session: Session, user: User, partner_id: str, purpose_name: str) -> ConsentEventPublic:
        """Revoke through the registrar path; from the block this is mined in, the partner's requests are
        refused. Refused by the chain (422) if nothing is granted."""
        purpose = parse_purpose(purpose_name)
        partner = get_partner(session, partner_id)
        if user.wallet:
            raise Conflict(
                "this user consents with their own wallet: sign the EIP-712 revocation and relay it",
                wallet=user.wallet,
            )
        subject = subject_of(user)
        tx = self._gateway.run(
            "revoking consent",
            lambda: self._registry.revoke(subject, partner.address, purpose, sender=self._registrar),
        )
        now = self._gateway.run("reading the chain's clock", self._chain.now)
        event = _record(
            session, user.id, user.pseudonym, partner, purpose, ConsentAction.REVOKE, "registrar", tx, now
        )
        return event_public(event)

    # ------------------------------------------------------------------ reads
    def state(self, session: Session, user: User) -> ConsentState:
        """Every partner × purpose with its on-chain state now (one mask call per partner)."""
        subject = subject_of(user)
        partners = session.exec(select(Partner).order_by(col(Partner.id))).all()
        items: list[ConsentStateItem] = []
        for partner in partners:
            check = self._gateway.verify_consent(subject, partner.address, frozenset(Purpose))
            items.extend(
                ConsentStateItem(
                    partner_id=partner.id,
                    partner_name=partner.name,
                    purpose=PURPOSE_NAMES[purpose],
                    granted=purpose in check.held,
                    notice_version=partner.notice_version,
                    checked_at_block=check.head.number,
                )
                for purpose in Purpose
            )
        return ConsentState(pseudonym=user.pseudonym, consents=items)

    @staticmethod
    def history(session: Session, user: User) -> ConsentHistory:
        rows = session.exec(
            select(ConsentEvent)
            .where(ConsentEvent.pseudonym == user.pseudonym)
            .order_by(col(ConsentEvent.id))
        ).all()
        return ConsentHistory(history=[event_public(e) for e in rows])

    @staticmethod
    def receipt(session: Session, user: User, receipt_id: str) -> ReceiptPublic:
        event = session.exec(
            select(ConsentEvent).where(
                ConsentEvent.receipt_id == receipt_id, ConsentEvent.pseudonym == user.pseudonym
            )
        ).first()
        if event is None or event.receipt is None:
            raise NotFound(f"unknown receipt {receipt_id!r}")
        return ReceiptPublic(
            receipt=event.receipt,
            receipt_hash=event.receipt_hash,
            tx_hash=event.tx_hash,
            block_number=event.block_number,
        )

    # ------------------------------------------------------------------ wallet path
    def typed_data(
        self,
        session: Session,
        user: User,
        partner_id: str,
        purpose_name: str,
        action: ConsentAction,
        days: int | None,
    ) -> TypedDataPublic:
        """The EIP-712 message a wallet user signs (``eth_signTypedData_v4``), with its receipt for a
        grant; then POST both with the signature to ``/api/v1/consents/relay``."""
        purpose = parse_purpose(purpose_name)
        partner = get_partner(session, partner_id)
        if not user.wallet:
            raise Conflict("this user has no wallet: grant and revoke through PUT/DELETE /api/v1/me/consents")
        subject = subject_for_wallet(user.wallet)
        c = self._registry
        chain_id = self._chain.chain_id

        def build() -> TypedDataPublic:
            head = self._chain.head()
            nonce = c.nonce_of(subject, partner.address, purpose)
            deadline = head.timestamp + self._signature_ttl_s
            if action is ConsentAction.REVOKE:
                revocation = ConsentRevocation(subject, partner.address, purpose)
                typed = consent_revocation_typed_data(c.address, chain_id, revocation, nonce, deadline)
                return TypedDataPublic(typed_data=to_jsonable(typed), receipt=None)
            terms = c.current_terms(partner.address, purpose, self._expiry(head.timestamp, days))
            receipt = self._receipt(subject, partner, purpose, terms, head.timestamp)
            grant_ = ConsentGrant(subject, terms, receipt_hash(receipt))
            typed = consent_grant_typed_data(c.address, chain_id, grant_, nonce, deadline)
            return TypedDataPublic(typed_data=to_jsonable(typed), receipt=receipt)

        return self._gateway.run("preparing the signature request", build)

    def relay(self, session: Session, body: GrantRelay | RevocationRelay) -> ConsentChange:
        """Relay a wallet-signed grant or revocation (the service pays the gas). The registry checks the
        signature, nonce and deadline; a forged, expired or replayed one comes back as a named refusal
        (422 ``chain_refused``)."""
        r, vs = split_signature(body.signature)
        m = body.message
        subject = bytes.fromhex(m.subject.removeprefix("0x"))
        # an address is case-insensitive (EIP-55 is only a checksum): look the partner up by its checksum
        partner_address = checksum(m.partner)
        purpose = Purpose(m.purpose)
        partner = session.exec(select(Partner).where(Partner.address == partner_address)).first()
        if partner is None:
            raise NotFound(f"message.partner: no partner at {partner_address}", field="message.partner")
        digest: bytes | None = None
        signed: SignedConsentGrant | SignedConsentRevocation
        if isinstance(body, GrantRelay):
            g = body.message
            terms = ConsentTerms(
                partner.address, purpose, g.expiresAt, g.platformNoticeVersion, g.partnerNoticeVersion
            )
            digest = bytes.fromhex(g.receiptHash.removeprefix("0x"))
            if body.receipt is not None and receipt_hash(body.receipt) != digest:
                raise Unprocessable("receipt: its hash does not match message.receiptHash", field="receipt")
            signed = SignedConsentGrant(subject, terms, digest, m.nonce, m.deadline, r, vs)
        else:
            signed = SignedConsentRevocation(subject, partner.address, purpose, m.nonce, m.deadline, r, vs)
        c = self._registry

        def send() -> tuple[TxResult, int]:
            if isinstance(signed, SignedConsentGrant):
                tx = c.grant_by_sig(signed, sender=self._registrar)
            else:
                tx = c.revoke_by_sig(signed, sender=self._registrar)
            return tx, self._chain.now()

        tx, now = self._gateway.run(f"relaying a signed {body.action}", send)
        user = session.exec(select(User).where(User.pseudonym == "0x" + subject.hex())).first()
        event = _record(
            session,
            user.id if user is not None else None,
            "0x" + subject.hex(),
            partner,
            purpose,
            ConsentAction(body.action),
            f"wallet {wallet_for_subject(subject)}",
            tx,
            now,
            body.receipt,
            digest,
        )
        return change_public(event)


def _record(
    session: Session,
    user_id: str | None,
    pseudonym_hex: str,
    partner: Partner,
    purpose: Purpose,
    action: ConsentAction,
    path: str,
    tx: TxResult,
    chain_time: int,
    receipt: dict[str, Any] | None = None,
    digest: bytes | None = None,
) -> ConsentEvent:
    """Write the history row of a mined consent change (the one writer of ``consent_event``)."""
    event = ConsentEvent(
        user_id=user_id,
        pseudonym=pseudonym_hex,
        partner_id=partner.id,
        purpose=PURPOSE_NAMES[purpose],
        action=action,
        path=path,
        receipt_id=(receipt or {}).get("receipt_id"),
        receipt=receipt,
        receipt_hash=None if digest is None else "0x" + digest.hex(),
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        chain_time=chain_time,
    )
    session.add(event)
    session.commit()
    session.refresh(event)
    return event
