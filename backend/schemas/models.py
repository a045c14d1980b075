"""The model registry, as the operator reads and drives it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelVersionPublic(BaseModel):
    """A model version. ``status``: ``training`` (with ``progress``), ``failed`` (``error``), ``candidate``,
    ``rejected`` (the quality gate refused it), ``served``, ``retired`` (served before)."""

    version: str
    model_name: str
    status: str
    source: str
    progress: float
    error: str | None
    #: What it was trained on: table sizes, the split's cutoff and fingerprint.
    trained_on: dict[str, Any]
    #: Held-out metrics on its own split, scored through the serving path.
    metrics: dict[str, Any]
    #: Both versions' scores on this version's split (``scores.candidate``, ``scores.served``), and, once a
    #: promotion was tried, the verdict.
    gate: dict[str, Any]
    artifact_sha256: str | None
    artifact_bytes: int
    created_at: dt.datetime
    finished_at: dt.datetime | None


class ModelEventPublic(BaseModel):
    action: str
    version: str
    previous: str | None
    actor: str
    detail: dict[str, Any]
    at: dt.datetime


class ModelRegistryPublic(BaseModel):
    """Every version, newest first, the one served, and the registry's history (newest first)."""

    served: str | None
    versions: list[ModelVersionPublic]
    history: list[ModelEventPublic]


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Epochs of the served model's torch network.
    epochs: int = Field(default=20, ge=1, le=500)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Serve it even if the quality gate refuses (recorded in the history).
    force: bool = False


class Promotion(BaseModel):
    """What a promotion or rollback did: the version serving now and the one before it."""

    version: str
    previous: str | None
    gate: dict[str, Any] | None = None
    forced: bool = False
