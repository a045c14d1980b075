"""Partners: recommendations (consent-gated), conversions and reversals, agreements, statements and the
reconciliation against the chain. A partner sees only its own data; others' ids answer 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import PartnerDep, RuntimeDep, SessionDep, offload
from backend.errors import BadRequest
from backend.models import ConversionCreate, ConversionState
from backend.services import agreements as agreement_service
from backend.services import ledger as ledger_service
from backend.services import settlement
from backend.services.recommend import recommend

router = APIRouter(prefix="/api/v1", tags=["partner"])

#: A row id: at most the database's BIGINT (a larger one would overflow the query: 422, not 500).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The user's on-chain pseudonym (0x + 64 hex digits), as the user shared it with the partner.
    subject: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    k: int = Field(default=5, ge=1, le=20, strict=True)


@router.post("/recommendations")
async def recommendations(
    body: RecommendationRequest, partner: PartnerDep, runtime: RuntimeDep
) -> JSONResponse:
    """Products for one user, only if the chain says, now, that the user allows profiling and product
    recommendation for this partner (403 otherwise, 503 if the chain cannot be asked).

    On the in-process chain the whole request is CPU work of about a millisecond and runs on the event loop
    (a worker-thread hop would cost more than it saves); against a node it runs in a worker thread, since
    the chain call waits on the network."""
    return JSONResponse(await offload(runtime, recommend, runtime, partner, body.subject, body.k))


@router.post("/conversions", status_code=202)
def report_conversion(
    body: ConversionCreate, partner: PartnerDep, runtime: RuntimeDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """Accept a conversion into the outbox (202); it is settled on chain in the next batch. The same
    order id again returns the same conversion (200)."""
    row, created = settlement.report(runtime, session, partner, body)
    if not created:
        response.status_code = 200
    return ledger_service.conversion_public(row)


@router.get("/conversions/{conversion_id}")
def get_conversion(conversion_id: RowId, partner: PartnerDep, session: SessionDep) -> dict[str, Any]:
    from backend.errors import NotFound
    from backend.models import Conversion

    row = session.get(Conversion, conversion_id)
    if row is None or row.partner_id != partner.id:
        raise NotFound(f"unknown conversion {conversion_id}")
    return ledger_service.conversion_public(row)


@router.post("/conversions/{conversion_id}/reversal", status_code=202)
def reverse(
    conversion_id: RowId, partner: PartnerDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """Reverse a conversion (a cancelled policy, a withdrawal) inside its validation window."""
    row = settlement.request_reversal(runtime, session, partner, conversion_id)
    return ledger_service.conversion_public(row)


@router.get("/ledger/agreements")
def agreements(partner: PartnerDep, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    names = agreement_service.party_names(runtime, session)
    return {
        "agreements": [
            agreement_service.agreement_public(a, names)
            for a in agreement_service.agreements_of(session, partner.id)
        ]
    }


@router.get("/ledger/agreements/{agreement_id}")
def agreement(
    agreement_id: RowId, partner: PartnerDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    return agreement_service.agreement_public(
        agreement_service.get_agreement(session, agreement_id, partner.id),
        agreement_service.party_names(runtime, session),
    )


@router.get("/ledger/agreements/{agreement_id}/statement")
def statement(
    agreement_id: RowId,
    partner: PartnerDep,
    session: SessionDep,
    state: Annotated[str | None, Query()] = None,
    since: Annotated[int | None, Query(ge=0, description="unix time, inclusive")] = None,
    until: Annotated[int | None, Query(ge=0, description="unix time, exclusive")] = None,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Provisional, final and reversed totals per party, and the conversions with their transactions."""
    if state is not None and state not in {s.value for s in ConversionState}:
        raise BadRequest(
            f"state: unknown state {state!r}; expected one of {', '.join(s.value for s in ConversionState)}",
            field="state",
        )
    a = agreement_service.get_agreement(session, agreement_id, partner.id)
    return ledger_service.statement(
        session, a, state=state, since=since, until=until, limit=limit, offset=offset
    )


@router.get("/ledger/agreements/{agreement_id}/reconcile")
def reconcile(
    agreement_id: RowId, partner: PartnerDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """Recompute the statement from the chain's events and the ledger's totals; report every difference."""
    a = agreement_service.get_agreement(session, agreement_id, partner.id)
    return ledger_service.reconcile(runtime, session, a)
