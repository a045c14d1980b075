"""Users: creation (pseudonym + secret per-user key), sign-in tokens, export and erasure."""

from __future__ import annotations

import functools
import secrets
from typing import Any

from sqlmodel import Session, select

from backend.chain import Purpose, subject_for_wallet
from backend.errors import Conflict, NotFound
from backend.models import (
    ConsentEvent,
    Conversion,
    Partner,
    Profile,
    Recommendation,
    User,
    UserCreate,
    iso,
    utcnow,
)
from backend.privacy import new_user_key, pseudonym
from backend.services.runtime import Runtime, key_hash, new_secret


def create_user(session: Session, body: UserCreate) -> tuple[User, str]:
    if session.exec(select(User.id).where(User.platform_user_id == body.platform_user_id)).first():
        raise Conflict(
            f"platform_user_id {body.platform_user_id!r} already has a user", field="platform_user_id"
        )
    token = new_secret("usr")
    if body.wallet:
        subject = subject_for_wallet(body.wallet)
        key = None
    else:
        key = new_user_key()
        subject = pseudonym(key, body.platform_user_id)
    user = User(
        id="u_" + secrets.token_hex(8),
        platform_user_id=body.platform_user_id,
        pseudonym="0x" + subject.hex(),
        user_key=key,
        wallet=body.wallet,
        token_hash=key_hash(token),
    )
    if session.exec(select(User.id).where(User.pseudonym == user.pseudonym)).first():
        raise Conflict("this wallet already belongs to a user", field="wallet")
    session.add(user)
    session.commit()
    session.refresh(user)
    return user, token


def issue_token(session: Session, user_id: str) -> str:
    user = session.get(User, user_id)
    if user is None or user.erased_at is not None:
        raise NotFound(f"unknown user {user_id!r}")
    token = new_secret("usr")
    user.token_hash = key_hash(token)
    session.add(user)
    session.commit()
    return token


def export(session: Session, user: User) -> dict[str, Any]:
    """Everything the service holds about ``user`` (GDPR art. 15/20, PIPL art. 45)."""
    profile = session.get(Profile, user.id)
    recs = session.exec(select(Recommendation).where(Recommendation.pseudonym == user.pseudonym)).all()
    convs = session.exec(select(Conversion).where(Conversion.pseudonym == user.pseudonym)).all()
    events = session.exec(select(ConsentEvent).where(ConsentEvent.pseudonym == user.pseudonym)).all()
    return {
        "user": {
            "id": user.id,
            "platform_user_id": user.platform_user_id,
            "pseudonym": user.pseudonym,
            "wallet": user.wallet,
            "created_at": iso(user.created_at),
        },
        "profile": None
        if profile is None
        else {
            "data": profile.data,
            "course_count": len(profile.course_indices),
            "products_held": len(profile.product_indices),
        },
        "consent_history": [
            {k: v for k, v in e.model_dump().items() if k != "user_id"} | {"created_at": iso(e.created_at)}
            for e in events
        ],
        "recommendations": [
            {
                "id": r.id,
                "partner_id": r.partner_id,
                "products": r.products,
                "model_version": r.model_version,
                "consent_block": r.consent_block,
                "served_at": r.served_at,
            }
            for r in recs
        ],
        "conversions": [
            {
                "id": c.id,
                "partner_id": c.partner_id,
                "product_id": c.product_id,
                "value": c.value,
                "state": c.state,
                "tx_hash": c.tx_hash,
            }
            for c in convs
        ],
    }


def erase(runtime: Runtime, session: Session, user: User) -> dict[str, Any]:
    """Revoke what the registrar granted, then delete the profile and the per-user key: the on-chain
    pseudonym can no longer be linked to anyone. Settlement records keep the bare pseudonym (an audit
    trail that identifies nobody)."""
    revoked: list[dict[str, str]] = []
    if not user.wallet:
        subject = bytes.fromhex(user.pseudonym.removeprefix("0x"))
        partners = session.exec(select(Partner)).all()
        for partner in partners:
            check = runtime.gateway.verify_consent(subject, partner.address, frozenset(Purpose))
            for purpose in sorted(check.held):
                # an unreachable chain stops here with a 503, before anything is deleted
                tx = runtime.gateway.run(
                    "revoking consent before erasure",
                    functools.partial(
                        runtime.deployment.consent.revoke,
                        subject,
                        partner.address,
                        purpose,
                        sender=runtime.roles.registrar,
                    ),
                )
                revoked.append(
                    {"partner_id": partner.id, "purpose": purpose.name.lower(), "tx_hash": tx.tx_hash}
                )
    profile = session.get(Profile, user.id)
    if profile is not None:
        session.delete(profile)
    for e in session.exec(select(ConsentEvent).where(ConsentEvent.user_id == user.id)).all():
        e.user_id = None
        session.add(e)
    user.user_key = None
    user.platform_user_id = None
    user.token_hash = None
    user.erased_at = utcnow()
    session.add(user)
    session.commit()
    return {
        "erased": True,
        "revoked_on_chain": revoked,
        "wallet_consents": "revoke them with your wallet" if user.wallet else None,
        "kept": "settlement records under the bare pseudonym, which no longer links to you",
    }
