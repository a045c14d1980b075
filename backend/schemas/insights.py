"""The operator's view of the served model, the recommender benchmark and the running A/B experiment."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ArmReport(BaseModel):
    arm: str
    #: The arm's planned share of learners.
    weight: float | None
    units: int
    recommendations: int
    converters: int
    conversions: int
    conversion_value: int
    rate: float | None
    rate_ci_low: float | None
    rate_ci_high: float | None


class SampleRatioCheck(BaseModel):
    chi2: float | None
    p_value: float | None
    threshold: float
    mismatch: bool
    observed: dict[str, int]
    expected: dict[str, float | None]


class ExperimentReport(BaseModel):
    """Per-arm units, converters and rates (Wilson intervals), the treatment-vs-control comparison, the
    sample-ratio-mismatch check and a plain-language verdict. Undefined numbers are null."""

    experiment: str
    running: bool
    control: str | None
    treatment: str | None
    alpha: float
    min_units_per_arm: int
    arms: list[ArmReport]
    total_units: int
    crossed_units: int
    #: The difference, its interval and test (``recommender.abtest.ABResult``'s fields).
    comparison: dict[str, Any] | None
    srm: SampleRatioCheck | None
    verdict: str


class ServedModel(BaseModel):
    version: str
    model_name: str
    trained_at: str | None
    data_fingerprint: str | None
    seed: int | None
    format_version: int | None
    feature_dims: dict[str, Any] | None
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    feature_dim: int
    n_products: int
    explanations: bool


class PlotInfo(BaseModel):
    available: bool
    url: str


class ModelReport(BaseModel):
    loaded: bool
    model: ServedModel | None
    model_hint: str | None = None
    #: The latest ``make bench-recommender`` summary (null before the first run).
    benchmark: dict[str, Any] | None
    benchmark_error: str | None = None
    benchmark_hint: str | None = None
    plot: PlotInfo
