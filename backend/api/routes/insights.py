"""Operator insights: the served model's evaluation, the recommender benchmark and the live A/B experiment."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from backend.api.deps import ExperimentDep, InsightsDep, OperatorDep
from backend.schemas.common import errors
from backend.schemas.insights import ExperimentReport, ModelReport
from backend.services.insights import PLOT_FILE

router = APIRouter(prefix="/api/v1/operator", tags=["operator"], responses=errors(401, 403))


@router.get("/experiment", response_model=ExperimentReport)
def experiment(_: OperatorDep, service: ExperimentDep) -> ExperimentReport:
    """The running A/B experiment: per-arm units, converters and rates (Wilson CIs), the treatment-vs-
    control difference (95 % CI, p-value), the sample-ratio-mismatch check and a plain-language verdict."""
    return service.report()


@router.get("/model", response_model=ModelReport, response_model_exclude_unset=True)
def model(_: OperatorDep, service: InsightsDep) -> ModelReport:
    """The served model (version, training time, metrics recorded at training) and the latest recommender
    benchmark summary (``make bench-recommender``), if one has been run."""
    return service.model_report()


@router.get(
    f"/reports/{PLOT_FILE}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **errors(401, 403, 404),
    },
)
def comparison_plot(_: OperatorDep, service: InsightsDep) -> FileResponse:
    """The benchmark's model-comparison plot (PNG), written by ``make bench-recommender``."""
    return FileResponse(service.plot(), media_type="image/png", headers={"Cache-Control": "no-cache"})
