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
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from backend.chain import (
    ConsentGrant,
    ConsentRevocation,
    ConsentTerms,
    Purpose,
    SignedConsentGrant,
    SignedConsentRevocation,
    TxResult,
    consent_grant_typed_data,
    consent_revocation_typed_data,
    subject_for_wallet,
    wallet_for_subject,
)
from backend.chain.eip712 import compact
from backend.chain.types import checksum
from backend.core.jsonable import to_jsonable
from backend.errors import BadRequest, ChainUnavailable, Conflict, NotFound
from backend.models import ConsentAction, ConsentEvent, Partner, User, iso
from backend.privacy import reference_hash
from backend.services.gateway import PURPOSE_NAMES
from backend.services.runtime import Runtime

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

PLATFORM = {"name": "KnowLedger platform", "contact": "privacy@knowledger.example", "jurisdiction": "CN"}


def purpose_list(runtime: Runtime) -> dict[str, Any]:
    """The purposes and their notices. The texts do not depend on the chain; the platform's notice version
    does: with the chain away it is ``null`` and ``chain_unavailable`` says why (the texts stay readable)."""
    out: dict[str, Any] = {}
    try:
        version: int | None = runtime.gateway.run(
            "reading the platform notice version", runtime.deployment.consent.platform_notice_version
        )
    except ChainUnavailable as exc:
        version = None
        out["chain_unavailable"] = exc.message
    return {
        "platform_notice_version": version,
        **out,
        "purposes": [
            {"id": PURPOSE_NAMES[p], "bit": int(p), **{k: v for k, v in PURPOSE_NOTICES[p].items()}}
            for p in Purpose
        ],
    }


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def receipt_hash(receipt: dict[str, Any]) -> bytes:
    return reference_hash("receipt", canonical_json(receipt))


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def build_receipt(
    runtime: Runtime, subject: bytes, partner: Partner, purpose: Purpose, terms: ConsentTerms, now: int
) -> dict[str, Any]:
    """A consent receipt with the ISO/IEC TS 27560 / Kantara core fields (no personal data: the principal
    is the pseudonym)."""
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
            "chain_id": runtime.chain.chain_id,
            "registry": runtime.deployment.consent.address,
            "partner": partner.address,
            "purpose_bit": int(purpose),
        },
    }


@dataclass
class ConsentChange:
    event: ConsentEvent
    tx: TxResult | None


def _event_public(e: ConsentEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "partner_id": e.partner_id,
        "purpose": e.purpose,
        "action": e.action,
        "path": e.path,
        "receipt_id": e.receipt_id,
        "receipt_hash": e.receipt_hash,
        "tx_hash": e.tx_hash,
        "block_number": e.block_number,
        "chain_time": e.chain_time,
        "created_at": iso(e.created_at),
    }


def event_public(e: ConsentEvent, with_receipt: bool = False) -> dict[str, Any]:
    out = _event_public(e)
    if with_receipt:
        out["receipt"] = e.receipt
    return out


def get_partner(session: Session, partner_id: str) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"unknown partner {partner_id!r}", partner_id=partner_id)
    return partner


def subject_of(user: User) -> bytes:
    return bytes.fromhex(user.pseudonym.removeprefix("0x"))


def grant(
    runtime: Runtime, session: Session, user: User, partner: Partner, purpose: Purpose, days: int | None
) -> ConsentEvent:
    """Grant through the registrar path: the service signs the transaction for the user's pseudonym."""
    if user.wallet:
        raise Conflict(
            "this user consents with their own wallet: sign the EIP-712 grant (POST "
            "/api/v1/me/consents/{partner}/{purpose}/typed-data) and relay it",
            wallet=user.wallet,
        )
    subject = subject_of(user)
    c = runtime.deployment.consent
    lifetime = min(days or runtime.settings.consent_days, 390) * DAY

    def send() -> tuple[TxResult, dict[str, Any], bytes, int]:
        head = runtime.chain.head()
        max_duration = c.max_consent_duration()
        expires = head.timestamp + min(lifetime, max_duration - 60)
        terms = c.current_terms(partner.address, purpose, expires)
        if terms.partner_notice_version == 0:
            raise Conflict(f"partner {partner.id!r} has not published a notice yet")
        receipt = build_receipt(runtime, subject, partner, purpose, terms, head.timestamp)
        digest = receipt_hash(receipt)
        tx = c.grant(subject, terms, digest, sender=runtime.roles.registrar)
        return tx, receipt, digest, head.timestamp

    tx, receipt, digest, now = runtime.gateway.run("granting consent", send)
    return _record(
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


def revoke(
    runtime: Runtime, session: Session, user: User, partner: Partner, purpose: Purpose
) -> ConsentEvent:
    """Revoke through the registrar path; refused by the chain (409) if nothing is granted."""
    if user.wallet:
        raise Conflict(
            "this user consents with their own wallet: sign the EIP-712 revocation and relay it",
            wallet=user.wallet,
        )
    subject = subject_of(user)
    c = runtime.deployment.consent

    def send() -> TxResult:
        return c.revoke(subject, partner.address, purpose, sender=runtime.roles.registrar)

    tx = runtime.gateway.run("revoking consent", send)
    runtime.gateway.invalidate()
    now = runtime.chain.now()
    return _record(
        session, user.id, user.pseudonym, partner, purpose, ConsentAction.REVOKE, "registrar", tx, now
    )


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
    """Write the history row of a mined consent change."""
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


def current_state(runtime: Runtime, session: Session, user: User) -> list[dict[str, Any]]:
    """Every partner × purpose with its on-chain state now (one mask call per partner)."""
    subject = subject_of(user)
    partners = session.exec(select(Partner).order_by(Partner.id)).all()
    out = []
    for partner in partners:
        check = runtime.gateway.verify_consent(subject, partner.address, frozenset(Purpose))
        for purpose in Purpose:
            out.append(
                {
                    "partner_id": partner.id,
                    "partner_name": partner.name,
                    "purpose": PURPOSE_NAMES[purpose],
                    "granted": purpose in check.held,
                    "notice_version": partner.notice_version,
                    "checked_at_block": check.head.number,
                }
            )
    return out


def history(session: Session, user: User) -> list[ConsentEvent]:
    return list(
        session.exec(
            select(ConsentEvent)
            .where(ConsentEvent.pseudonym == user.pseudonym)
            .order_by(col(ConsentEvent.id))
        ).all()
    )


# ---------------------------------------------------------------------------------------------- wallet path
def typed_data_for(
    runtime: Runtime, user: User, partner: Partner, purpose: Purpose, action: ConsentAction, days: int | None
) -> dict[str, Any]:
    """The EIP-712 message a wallet user signs (``eth_signTypedData_v4``), with its receipt for a grant."""
    if not user.wallet:
        raise Conflict("this user has no wallet: grant and revoke through PUT/DELETE /api/v1/me/consents")
    subject = subject_for_wallet(user.wallet)
    c = runtime.deployment.consent

    def build() -> dict[str, Any]:
        head = runtime.chain.head()
        nonce = c.nonce_of(subject, partner.address, purpose)
        deadline = head.timestamp + runtime.settings.signature_ttl_s
        if action is ConsentAction.REVOKE:
            revocation = ConsentRevocation(subject, partner.address, purpose)
            typed = consent_revocation_typed_data(
                c.address, runtime.chain.chain_id, revocation, nonce, deadline
            )
            return {"typed_data": to_jsonable(typed), "receipt": None}
        lifetime = min(days or runtime.settings.consent_days, 390) * DAY
        expires = head.timestamp + min(lifetime, c.max_consent_duration() - 60)
        terms = c.current_terms(partner.address, purpose, expires)
        receipt = build_receipt(runtime, subject, partner, purpose, terms, head.timestamp)
        grant_ = ConsentGrant(subject, terms, receipt_hash(receipt))
        typed = consent_grant_typed_data(c.address, runtime.chain.chain_id, grant_, nonce, deadline)
        return {"typed_data": to_jsonable(typed), "receipt": receipt}

    return runtime.gateway.run("preparing the signature request", build)


def split_signature(signature: str) -> tuple[bytes, bytes]:
    """A 65-byte ``r‖s‖v`` hex signature → EIP-2098 ``(r, vs)``; a 64-byte one is taken as ``r‖vs``."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise BadRequest("signature: not hex", field="signature") from None
    if len(raw) == 64:
        return raw[:32], raw[32:]
    if len(raw) != 65:
        raise BadRequest(f"signature: expected 65 bytes (r‖s‖v), got {len(raw)}", field="signature")
    v = raw[64] if raw[64] >= 27 else raw[64] + 27
    if v not in (27, 28):
        raise BadRequest(f"signature: bad recovery byte v={raw[64]}", field="signature")
    return compact(v, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"))


def relay(
    runtime: Runtime,
    session: Session,
    message: dict[str, Any],
    signature: str,
    receipt: dict[str, Any] | None,
    action: ConsentAction,
) -> ConsentEvent:
    """Relay a wallet-signed grant or revocation. The registry checks the signature, nonce and deadline;
    a forged, expired or replayed one comes back as a named refusal (422)."""
    r, vs = split_signature(signature)
    try:
        subject = bytes.fromhex(str(message["subject"]).removeprefix("0x"))
        # an address is case-insensitive (EIP-55 is only a checksum): look the partner up by its checksum
        partner_address = checksum(str(message["partner"]))
        purpose = Purpose(int(message["purpose"]))
        nonce = int(message["nonce"])
        deadline = int(message["deadline"])
    except (KeyError, ValueError, TypeError) as exc:
        raise BadRequest(f"message: missing or invalid field ({exc})", field="message") from None
    if len(subject) != 32:
        raise BadRequest("message.subject: expected 32 bytes", field="message.subject")
    partner = session.exec(select(Partner).where(Partner.address == partner_address)).first()
    if partner is None:
        raise NotFound(f"message.partner: no partner at {partner_address}", field="message.partner")
    wallet = wallet_for_subject(subject)
    user = session.exec(select(User).where(User.pseudonym == "0x" + subject.hex())).first()
    c = runtime.deployment.consent
    digest: bytes | None = None
    try:
        if action is ConsentAction.GRANT:
            terms = ConsentTerms(
                partner.address,
                purpose,
                int(message["expiresAt"]),
                int(message["platformNoticeVersion"]),
                int(message["partnerNoticeVersion"]),
            )
            digest = bytes.fromhex(str(message["receiptHash"]).removeprefix("0x"))
            if len(digest) != 32:
                raise BadRequest("message.receiptHash: expected 32 bytes", field="message.receiptHash")
            signed: Any = SignedConsentGrant(subject, terms, digest, nonce, deadline, r, vs)
        else:
            signed = SignedConsentRevocation(subject, partner.address, purpose, nonce, deadline, r, vs)
    except (KeyError, ValueError, TypeError) as exc:
        raise BadRequest(f"message: missing or invalid field ({exc})", field="message") from None
    if receipt is not None and digest is not None and receipt_hash(receipt) != digest:
        raise BadRequest("receipt: its hash does not match message.receiptHash", field="receipt")

    def send() -> tuple[TxResult, int]:
        if action is ConsentAction.GRANT:
            tx = c.grant_by_sig(signed, sender=runtime.roles.registrar)
        else:
            tx = c.revoke_by_sig(signed, sender=runtime.roles.registrar)
        return tx, runtime.chain.now()

    tx, now = runtime.gateway.run(f"relaying a signed {action.value}", send)
    runtime.gateway.invalidate()
    user_id = user.id if user is not None else None
    pseudonym_hex = "0x" + subject.hex()
    return _record(
        session,
        user_id,
        pseudonym_hex,
        partner,
        purpose,
        action,
        f"wallet {wallet}",
        tx,
        now,
        receipt,
        digest,
    )
