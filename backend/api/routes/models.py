"""The model registry (operator): every version with its held-out metrics, training on the platform's data,
promotion through the quality gate, rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from backend.api.deps import ModelsDep, OperatorDep, TrainerDep
from backend.errors import NotFound
from backend.models import ModelEvent, ModelVersion
from backend.schemas.common import errors
from backend.schemas.models import (
    ModelEventPublic,
    ModelRegistryPublic,
    ModelVersionPublic,
    PromoteRequest,
    Promotion,
    TrainRequest,
)

router = APIRouter(prefix="/api/v1/models", tags=["models"])
_AUTH = (401, 403)
Version = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")]


def version_public(row: ModelVersion) -> ModelVersionPublic:
    return ModelVersionPublic.model_validate(row, from_attributes=True)


def event_public(row: ModelEvent) -> ModelEventPublic:
    return ModelEventPublic.model_validate(row, from_attributes=True)


@router.get("", response_model=ModelRegistryPublic, responses=errors(*_AUTH))
def registry(_: OperatorDep, models: ModelsDep) -> ModelRegistryPublic:
    """Every model version, newest first, the one served and the history of promotions and rollbacks."""
    reg = models.registry
    return ModelRegistryPublic(
        served=reg.served_version(),
        versions=[version_public(v) for v in reg.versions()],
        history=[event_public(e) for e in reg.history()],
    )


@router.get("/versions/{version}", response_model=ModelVersionPublic, responses=errors(*_AUTH, 404))
def version(version: Version, _: OperatorDep, models: ModelsDep) -> ModelVersionPublic:
    """One version: poll a training run here."""
    row = models.registry.get(version)
    if row is None:
        raise NotFound(f"unknown model version {version!r}")
    return version_public(row)


@router.post("", status_code=202, response_model=ModelVersionPublic, responses=errors(*_AUTH, 409))
def train(body: TrainRequest, _: OperatorDep, trainer: TrainerDep) -> ModelVersionPublic:
    """Train a new version on the platform's data (the ingested catalogue and events, the partners'
    products and the conversions they reported), in the background: poll
    ``/api/v1/models/versions/{version}``.
    It becomes a candidate scored, with the served version, on its held-out split; promote it to serve
    it. 422 when the data is not enough to train and judge a model."""
    return version_public(trainer.submit(epochs=body.epochs, seed=body.seed))


@router.post("/versions/{version}/promote", response_model=Promotion, responses=errors(*_AUTH, 404, 409, 503))
def promote(version: Version, body: PromoteRequest, _: OperatorDep, models: ModelsDep) -> Promotion:
    """Serve ``version`` if the quality gate passes (409 ``quality_gate_refused`` with both scores
    otherwise; ``force`` overrides it and is recorded). Every process swaps to it within
    ``KNOWLEDGER_MODEL_FOLLOW_INTERVAL_S``; no request fails during the swap."""
    return Promotion(**models.promote(version, actor="operator", force=body.force))


@router.post("/rollback", response_model=Promotion, responses=errors(*_AUTH, 409, 503))
def rollback(_: OperatorDep, models: ModelsDep) -> Promotion:
    """Serve again the version served before the current one."""
    return Promotion(**models.rollback(actor="operator"))
