"""Partners: recommendations (consent-gated), conversions and reversals, agreements, statements and the
reconciliation against the chain. A partner sees only its own data; others' ids answer 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic_core import to_json

from backend.api.deps import (
    AgreementsDep,
    ConversionsDep,
    LedgerDep,
    PartnerDep,
    RecommendationsDep,
    SessionDep,
    current_partner,
    hot_path_body,
    hot_path_openapi,
    offload,
)
from backend.models import ConversionCreate, ConversionPublic, ConversionState
from backend.schemas.common import RowId, errors
from backend.schemas.ledger import AgreementList, AgreementPublic, Reconciliation, Statement
from backend.schemas.recommendations import RecommendationPublic, RecommendationRequest

router = APIRouter(prefix="/api/v1", tags=["partner"], responses=errors(401, 403))


@router.post(
    "/recommendations",
    response_model=RecommendationPublic,
    responses=errors(401, 403, 404, 422, 503),
    openapi_extra=hot_path_openapi(RecommendationRequest),
)
async def recommendations(request: Request, service: RecommendationsDep) -> Response:
    """Products for one user, only if the chain says, now, that the user allows profiling and product
    recommendation for this partner (403 ``consent_required`` otherwise, 503 if the chain cannot be asked).
    The answer leaves only once its serving-log row is committed (503 if it cannot be).

    On the in-process chain the request is CPU work of well under a millisecond and runs on the event loop
    (a worker-thread hop would cost more than it saves). Against a node with PostgreSQL it runs on the event
    loop too, awaiting its reads and the chain's head; against a node with SQLite, in a worker thread. Either
    way the row is committed by the serving log's committer together with those of concurrent requests
    (group commit), while the event loop serves others.

    The busiest route parses its body itself (:func:`hot_path_body`, with the errors FastAPI's body
    parameter would give) and calls :func:`current_partner` (the dependency every partner route uses)
    itself: FastAPI's solving of the two was a quarter of the route's CPU. The service stays a dependency,
    so a test can still override it. Against a node, the chain's head is read while the key is checked
    (both begun after the request arrived). The body is encoded by pydantic-core directly (the route
    declares the schema; a test checks every answer against it)."""
    body = await hot_path_body(request, RecommendationRequest)
    head = service.gateway.head_soon() if service.awaits else None
    partner = await current_partner(request, request.headers.get("x-api-key"))
    if service.awaits:
        answer, row = await service.answer_async(partner, body.subject, body.k, head)
    else:
        answer, row = await offload(service.gateway, service.answer, partner, body.subject, body.k)
    await service.serving_log.write(row)
    return Response(to_json(answer), media_type="application/json")


@router.post(
    "/conversions",
    status_code=202,
    response_model=ConversionPublic,
    responses={
        200: {"model": ConversionPublic, "description": "This order id was already reported: the same one"},
        **errors(404, 409, 503),
    },
)
def report_conversion(
    body: ConversionCreate,
    partner: PartnerDep,
    service: ConversionsDep,
    session: SessionDep,
    response: Response,
) -> ConversionPublic:
    """Accept a conversion into the outbox (202); it is settled on chain in the next batch. The same
    order id again returns the same conversion (200)."""
    row, created = service.report(session, partner, body)
    if not created:
        response.status_code = 200
    return row


@router.get("/conversions/{conversion_id}", response_model=ConversionPublic, responses=errors(404))
def get_conversion(
    conversion_id: RowId, partner: PartnerDep, service: ConversionsDep, session: SessionDep
) -> ConversionPublic:
    return service.get(session, partner, conversion_id)


@router.post(
    "/conversions/{conversion_id}/reversal",
    status_code=202,
    response_model=ConversionPublic,
    responses=errors(404, 409, 503),
)
def reverse(
    conversion_id: RowId, partner: PartnerDep, service: ConversionsDep, session: SessionDep
) -> ConversionPublic:
    """Reverse a conversion (a cancelled policy, a withdrawal) inside its validation window."""
    return service.request_reversal(session, partner, conversion_id)


@router.get("/ledger/agreements", response_model=AgreementList)
def agreements(partner: PartnerDep, service: AgreementsDep, session: SessionDep) -> AgreementList:
    return service.list_for(session, partner.id)


@router.get("/ledger/agreements/{agreement_id}", response_model=AgreementPublic, responses=errors(404))
def agreement(
    agreement_id: RowId, partner: PartnerDep, service: AgreementsDep, session: SessionDep
) -> AgreementPublic:
    return service.get(session, agreement_id, partner.id)


@router.get("/ledger/agreements/{agreement_id}/statement", response_model=Statement, responses=errors(404))
def statement(
    agreement_id: RowId,
    partner: PartnerDep,
    ledger: LedgerDep,
    session: SessionDep,
    state: Annotated[ConversionState | None, Query()] = None,
    since: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="unix time, inclusive")] = None,
    until: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="unix time, exclusive")] = None,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Statement:
    """Provisional, final and reversed totals per party, and the conversions with their transactions."""
    return ledger.statement(
        session,
        agreement_id,
        partner.id,
        state=state,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/ledger/agreements/{agreement_id}/reconcile",
    response_model=Reconciliation,
    responses=errors(404, 503),
)
def reconcile(
    agreement_id: RowId, partner: PartnerDep, ledger: LedgerDep, session: SessionDep
) -> Reconciliation:
    """Recompute the statement from the chain's events and the ledger's totals; report every difference."""
    return ledger.reconcile(session, agreement_id, partner.id)
