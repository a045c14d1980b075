"""Unauthenticated reads: health, metrics, purposes and partners (the notices a user reads first), and the
relay of wallet-signed consents (the signature is the authority)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from backend.api.deps import ConsentDep, HealthDep, PartnersDep, SessionDep
from backend.models import PartnerPublic
from backend.schemas.common import errors
from backend.schemas.consent import ConsentChange, PurposeList, RelayBody
from backend.schemas.ops import Health

router = APIRouter()


@router.get(
    "/health",
    tags=["ops"],
    response_model=Health,
    responses={503: {"model": Health, "description": "Degraded: the body says which part and why"}},
)
def health(service: HealthDep, response: Response) -> Health:
    """Database, chain, model and workers. 200 when all can serve, 503 otherwise (with the reason)."""
    report = service.health()
    if report.status != "ok":
        response.status_code = 503
    return report


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}},
)
def metrics(service: HealthDep) -> Response:
    """Prometheus exposition format."""
    return Response(service.metrics(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/v1/purposes",
    tags=["consent"],
    response_model=PurposeList,
    response_model_exclude_unset=True,
    responses=errors(),
)
def purposes(consent: ConsentDep) -> PurposeList:
    """The four purposes with their plain-language notices, and the platform's notice version on chain."""
    return consent.purposes()


@router.get("/api/v1/partners", tags=["consent"], response_model=list[PartnerPublic], responses=errors())
def partners(service: PartnersDep, session: SessionDep) -> list[PartnerPublic]:
    return service.list(session)


@router.post(
    "/api/v1/consents/relay",
    tags=["consent"],
    status_code=201,
    response_model=ConsentChange,
    responses=errors(404, 503),
)
def relay(body: RelayBody, consent: ConsentDep, session: SessionDep) -> ConsentChange:
    """Relay a wallet-signed grant or revocation to the registry (the service pays the gas)."""
    return consent.relay(session, body)
