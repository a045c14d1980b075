"""The marketing funnel per partner and per experiment arm, over time: a partner's own, and every
partner's for the operator. The pages poll these to update live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import FunnelDep, OperatorDep, PartnerDep
from backend.schemas.common import errors
from backend.schemas.funnel import BucketName, FunnelReport

router = APIRouter(prefix="/api/v1", responses=errors(401, 403))
#: The latest instant a timestamp may name (the end of year 9999, UTC).
_MAX_TIME = 253_402_300_799
Since = Annotated[int | None, Query(ge=0, le=_MAX_TIME, description="Unix seconds, inclusive")]
Until = Annotated[int | None, Query(ge=1, le=_MAX_TIME, description="Unix seconds, exclusive")]


@router.get("/funnel", tags=["partner"], response_model=FunnelReport)
def partner_funnel(
    partner: PartnerDep,
    service: FunnelDep,
    since: Since = None,
    until: Until = None,
    bucket: BucketName = "hour",
) -> FunnelReport:
    """This partner's funnel: recommendations served, conversions reported, settled, final and reversed,
    per period and per experiment arm, with rates and their 95 % Wilson intervals. By default the last 24
    periods (the current one last)."""
    return service.report(partner.id, since, until, bucket)


@router.get(
    "/operator/funnel", tags=["operator"], response_model=FunnelReport, responses=errors(401, 403, 404)
)
def operator_funnel(
    _: OperatorDep,
    service: FunnelDep,
    partner_id: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    since: Since = None,
    until: Until = None,
    bucket: BucketName = "hour",
) -> FunnelReport:
    """Every partner's funnel (or one's), as ``GET /api/v1/funnel`` gives a partner its own."""
    return service.report(partner_id, since, until, bucket)
