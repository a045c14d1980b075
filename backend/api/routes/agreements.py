"""Agreements: the operator proposes terms on chain (the chain keeps their hash, the service mirrors them);
each party accepts by its own EIP-712 signature, relayed here, or by its own transaction. The agreement is
active once every party has accepted; the indexer keeps the mirror's status in step with the chain."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import OperatorDep, RuntimeDep, SessionDep
from backend.chain import AgreementTerms, Party, agreement_acceptance_typed_data, currency_code
from backend.chain.types import checksum
from backend.errors import BadRequest, Conflict, NotFound
from backend.services import agreements as agreement_service

router = APIRouter(prefix="/api/v1/agreements", tags=["agreements"])

Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
DAY = 86_400
AgreementId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class PartyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: Address
    #: Share of the commission, scale 1e6 (600000 = 60 %); the shares sum to exactly 1e6.
    share: int = Field(ge=0, le=1_000_000)


class AgreementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: str = Field(min_length=1, max_length=40)
    #: Parties in order; ``parties[0]`` receives the rounding remainder of each split.
    parties: list[PartyIn] = Field(min_length=1, max_length=16)
    #: Commission rate on the conversion value, scale 1e6 (80000 = 8 %).
    commission_rate: int = Field(ge=0, le=1_000_000)
    attribution_window_days: int = Field(default=30, ge=1, le=365)
    validation_window_days: int = Field(default=14, ge=0, le=365)
    #: Validity; ``valid_from`` defaults to now (chain time).
    valid_from: int | None = Field(default=None, ge=0)
    valid_days: int = Field(default=365, ge=1, le=3650)
    currency: str = Field(default="CNY", min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    #: The agreement this one amends (0: none).
    supersedes: int = Field(default=0, ge=0)


class AcceptanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: Address
    deadline: int = Field(ge=0)
    #: The party's ``AcceptAgreement`` EIP-712 signature, 65 bytes hex (``r‖s‖v``).
    signature: str = Field(min_length=130, max_length=132)


@router.post("", status_code=201)
def propose(
    body: AgreementCreate, _: OperatorDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """Propose on chain, signed by the first party whose key this service holds (the platform)."""
    from backend.models import Partner

    partner = session.get(Partner, body.partner_id)
    if partner is None:
        raise NotFound(f"unknown partner {body.partner_id!r}", field="partner_id")
    held = {a.address for a in runtime.chain.accounts}
    proposer = next((checksum(p.account) for p in body.parties if checksum(p.account) in held), None)
    if proposer is None:
        raise BadRequest(
            "parties: none of the parties is an account this service can sign for (the proposer must be one)",
            field="parties",
        )
    now = runtime.gateway.chain_time_estimate()
    valid_from = body.valid_from if body.valid_from is not None else now - 60
    terms = AgreementTerms(
        parties=tuple(Party(p.account, p.share) for p in body.parties),
        partner=partner.address,
        reporter=runtime.roles.reporter,
        commission_rate=body.commission_rate,
        attribution_window=body.attribution_window_days * DAY,
        validation_window=body.validation_window_days * DAY,
        valid_from=valid_from,
        valid_until=valid_from + body.valid_days * DAY,
        currency=currency_code(body.currency),
        supersedes=body.supersedes,
    )
    agreement = agreement_service.propose(runtime, session, partner, terms, sender=proposer)
    agreement = agreement_service.refresh_status(runtime, session, agreement)
    return agreement_service.agreement_public(agreement) | {"proposed_tx": agreement.proposed_tx}


@router.get("/{agreement_id}/typed-data")
def typed_data(
    agreement_id: AgreementId, party: str, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """The ``AcceptAgreement`` EIP-712 message a party signs (``eth_signTypedData_v4``)."""
    agreement = agreement_service.get_agreement(session, agreement_id, None)
    try:
        account = checksum(party)
    except Exception:
        raise BadRequest("party: not an address", field="party") from None
    if account not in [p["account"] for p in agreement.terms["parties"]]:
        raise BadRequest(f"party: {account} is not a party of agreement {agreement_id}", field="party")
    deadline = runtime.gateway.chain_time_estimate() + runtime.settings.signature_ttl_s
    typed = agreement_acceptance_typed_data(
        runtime.deployment.agreements.address,
        runtime.chain.chain_id,
        agreement_id,
        bytes.fromhex(agreement.terms_hash[2:]),
        account,
        deadline,
    )
    typed["message"]["termsHash"] = agreement.terms_hash
    return {"typed_data": typed, "terms": agreement.terms}


@router.post("/{agreement_id}/acceptances", status_code=201)
def accept(
    agreement_id: AgreementId, body: AcceptanceIn, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """Relay a party's signed acceptance; the contract checks the signature (EOA or ERC-1271)."""
    agreement = agreement_service.get_agreement(session, agreement_id, None)
    if agreement.status != "proposed":
        raise Conflict(f"agreement {agreement_id} is {agreement.status}, not proposed")
    try:
        raw = bytes.fromhex(body.signature.removeprefix("0x"))
    except ValueError:
        raise BadRequest("signature: not hex", field="signature") from None
    if len(raw) != 65:
        raise BadRequest(f"signature: expected 65 bytes (r‖s‖v), got {len(raw)}", field="signature")
    terms = agreement_service.terms_from_json(agreement.terms)
    tx = runtime.gateway.run(
        "relaying the acceptance",
        functools.partial(
            runtime.deployment.agreements.accept_by_sig,
            agreement_id,
            terms,
            checksum(body.party),
            body.deadline,
            raw,
            sender=runtime.roles.registrar,
        ),
    )
    agreement = agreement_service.refresh_status(runtime, session, agreement)
    return agreement_service.agreement_public(agreement) | {
        "tx_hash": tx.tx_hash,
        "block_number": tx.block_number,
    }


@router.get("/{agreement_id}")
def get(agreement_id: AgreementId, _: OperatorDep, session: SessionDep) -> dict[str, Any]:
    return agreement_service.agreement_public(agreement_service.get_agreement(session, agreement_id, None))
