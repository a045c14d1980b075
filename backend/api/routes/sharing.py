"""Partners: a consented learner's features (``data_sharing``) and marketing audiences
(``marketing_contact``), each checked on chain in the request and logged with its block."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import AudiencesDep, GatewayDep, PartnerDep, SharingDep, offload
from backend.schemas.common import errors
from backend.schemas.sharing import (
    AudiencePublic,
    AudienceRequest,
    DataExportPublic,
    DataExportRequest,
    SegmentList,
)

router = APIRouter(prefix="/api/v1", tags=["partner"], responses=errors(401, 403))


@router.post(
    "/exports", status_code=201, response_model=DataExportPublic, responses=errors(401, 403, 404, 503)
)
async def export_features(
    body: DataExportRequest, partner: PartnerDep, service: SharingDep, gateway: GatewayDep
) -> DataExportPublic:
    """One learner's pseudonymous features (profile vector, segment, propensities; never the learning
    events or the platform's id), only if the chain says, now, that the learner allows ``data_sharing``
    for this partner (403 ``consent_required`` otherwise, 503 if the chain cannot be asked)."""
    return await offload(gateway, service.export, partner, body.subject)


@router.post(
    "/audiences", status_code=201, response_model=AudiencePublic, responses=errors(401, 403, 404, 503)
)
async def audience(
    body: AudienceRequest, partner: PartnerDep, service: AudiencesDep, gateway: GatewayDep
) -> AudiencePublic:
    """The learners (pseudonyms) this partner may contact for a campaign: those named, or in a segment,
    who hold ``marketing_contact`` for it at the head block the answer names. Valid for that block: ask
    again before each send (a learner who revoked is in no later audience)."""
    return await offload(gateway, service.build, partner, body)


@router.get("/segments", response_model=SegmentList)
def segments(_: PartnerDep, service: AudiencesDep) -> SegmentList:
    """The learners' segments by name, with their sizes (for ``POST /api/v1/audiences``)."""
    return service.segments()
