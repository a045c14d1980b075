"""Agreements: the service's mirror of on-chain partnership agreements (the chain keeps only the terms'
hash; the terms travel in calldata and live here, and anyone can check them against the hash)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from backend.chain import AgreementStatus, AgreementTerms, Party, TxResult, currency_code
from backend.chain.types import currency_name
from backend.errors import BadRequest, NotFound
from backend.models import Agreement, Partner, utcnow
from backend.services.consent import PLATFORM
from backend.services.runtime import Runtime


def terms_to_json(terms: AgreementTerms) -> dict[str, Any]:
    return {
        "parties": [{"account": p.account, "share": p.share} for p in terms.parties],
        "partner": terms.partner,
        "reporter": terms.reporter,
        "commission_rate": terms.commission_rate,
        "attribution_window": terms.attribution_window,
        "validation_window": terms.validation_window,
        "valid_from": terms.valid_from,
        "valid_until": terms.valid_until,
        "currency": currency_name(terms.currency),
        "supersedes": terms.supersedes,
    }


def terms_from_json(data: dict[str, Any]) -> AgreementTerms:
    return AgreementTerms(
        parties=tuple(Party(p["account"], int(p["share"])) for p in data["parties"]),
        partner=data["partner"],
        reporter=data["reporter"],
        commission_rate=int(data["commission_rate"]),
        attribution_window=int(data["attribution_window"]),
        validation_window=int(data["validation_window"]),
        valid_from=int(data["valid_from"]),
        valid_until=int(data["valid_until"]),
        currency=currency_code(str(data.get("currency", "CNY"))),
        supersedes=int(data.get("supersedes", 0)),
    )


def propose(
    runtime: Runtime, session: Session, partner: Partner, terms: AgreementTerms, sender: str
) -> Agreement:
    """Propose ``terms`` on chain (``sender`` must be a party whose key the service holds) and mirror them."""
    if terms.partner != partner.address:
        raise BadRequest("terms.partner must be the partner's address", field="terms.partner")
    tx: TxResult = runtime.gateway.run(
        "proposing the agreement", lambda: runtime.deployment.agreements.propose(terms, sender=sender)
    )
    agreement = Agreement(
        id=int(tx.value),
        partner_id=partner.id,
        terms=terms_to_json(terms),
        terms_hash="0x" + terms.hash().hex(),
        status="proposed",
        proposed_tx=tx.tx_hash,
    )
    session.add(agreement)
    session.commit()
    return agreement


def refresh_status(runtime: Runtime, session: Session, agreement: Agreement) -> Agreement:
    state = runtime.gateway.run(
        "reading the agreement", lambda: runtime.deployment.agreements.agreement_of(agreement.id)
    )
    agreement.status = AgreementStatus(state.status).name.lower()
    agreement.updated_at = utcnow()
    session.add(agreement)
    session.commit()
    return agreement


def agreements_of(session: Session, partner_id: str) -> list[Agreement]:
    return list(
        session.exec(select(Agreement).where(Agreement.partner_id == partner_id).order_by(col(Agreement.id)))
    )


def get_agreement(session: Session, agreement_id: int, partner_id: str | None) -> Agreement:
    a = session.get(Agreement, agreement_id)
    if a is None or (partner_id is not None and a.partner_id != partner_id):
        raise NotFound(f"unknown agreement {agreement_id}")
    return a


def party_names(runtime: Runtime, session: Session) -> dict[str, str]:
    """Display names for agreement parties: the partners by their on-chain address, and on a local chain the
    demo's platform and creator accounts. Accounts nobody named stay unnamed (``null``)."""
    names = {p.address: p.name for p in session.exec(select(Partner)).all() if p.address}
    named = runtime.roles.named
    if named is not None:
        names.setdefault(named.platform.address, PLATFORM["name"])
        names.setdefault(named.creator.address, "Course creators")
    return names


def agreement_public(a: Agreement, names: dict[str, str] | None = None) -> dict[str, Any]:
    terms = a.terms
    return {
        "id": a.id,
        "partner_id": a.partner_id,
        "status": a.status,
        "terms_hash": a.terms_hash,
        "terms": terms,
        "parties": [
            {
                "account": p["account"],
                "share": p["share"],
                "share_percent": p["share"] / 10_000,
                "name": (names or {}).get(p["account"]),
            }
            for p in terms["parties"]
        ],
    }
