"""Agreements: the operator proposes terms on chain (the chain keeps their hash, the service mirrors them);
each party accepts by its own EIP-712 signature, relayed here, or by its own transaction. The agreement is
active once every party has accepted; the indexer keeps the mirror's status in step with the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import AgreementsDep, OperatorDep, SessionDep
from backend.schemas.common import ADDRESS_PATTERN, RowId, errors
from backend.schemas.ledger import (
    AcceptanceIn,
    AgreementAccepted,
    AgreementCreate,
    AgreementProposed,
    AgreementPublic,
    AgreementTypedData,
)

router = APIRouter(prefix="/api/v1/agreements", tags=["agreements"])


@router.post("", status_code=201, response_model=AgreementProposed, responses=errors(401, 403, 404, 503))
def propose(
    body: AgreementCreate, _: OperatorDep, agreements: AgreementsDep, session: SessionDep
) -> AgreementProposed:
    """Propose on chain, signed by the first party whose key this service holds (the platform)."""
    return agreements.propose(session, body)


@router.get("/{agreement_id}/typed-data", response_model=AgreementTypedData, responses=errors(404, 503))
def typed_data(
    agreement_id: RowId,
    party: Annotated[str, Query(pattern=ADDRESS_PATTERN)],
    agreements: AgreementsDep,
    session: SessionDep,
) -> AgreementTypedData:
    """The ``AcceptAgreement`` EIP-712 message a party signs (``eth_signTypedData_v4``)."""
    return agreements.typed_data(session, agreement_id, party)


@router.post(
    "/{agreement_id}/acceptances",
    status_code=201,
    response_model=AgreementAccepted,
    responses=errors(404, 409, 503),
)
def accept(
    agreement_id: RowId, body: AcceptanceIn, agreements: AgreementsDep, session: SessionDep
) -> AgreementAccepted:
    """Relay a party's signed acceptance; the contract checks the signature (EOA or ERC-1271)."""
    return agreements.accept(session, agreement_id, body)


@router.get("/{agreement_id}", response_model=AgreementPublic, responses=errors(401, 403, 404))
def get(
    agreement_id: RowId, _: OperatorDep, agreements: AgreementsDep, session: SessionDep
) -> AgreementPublic:
    return agreements.get(session, agreement_id, None)
