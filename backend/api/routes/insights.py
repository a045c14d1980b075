"""Operator insights: the served model's evaluation, the recommender benchmark and the live A/B experiment."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from backend.api.deps import OperatorDep, RuntimeDep
from backend.core.jsonable import to_jsonable
from backend.errors import NotFound
from backend.services.experiment import analysis

router = APIRouter(prefix="/api/v1/operator", tags=["operator"])

BENCHMARK_FILE = "recommender_benchmark.json"
PLOT_FILE = "recommender_comparison.png"
PLOT_URL = f"/api/v1/operator/reports/{PLOT_FILE}"
BENCH_HINT = "run make bench-recommender"
#: The headline metrics of every benchmark protocol, per model.
BENCH_METRICS = ("ndcg@10", "map", "precision@10", "recall@10")


@router.get("/experiment")
def experiment(_: OperatorDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The running A/B experiment: per-arm units, converters and rates (Wilson CIs), the treatment-vs-
    control difference (95 % CI, p-value), the sample-ratio-mismatch check and a plain-language verdict."""
    return analysis(runtime.engine, runtime.settings)


@router.get("/model")
def model(_: OperatorDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The served model (version, training time, metrics recorded at training) and the latest recommender
    benchmark summary (``make bench-recommender``), if one has been run."""
    ranker = runtime.ranker
    out: dict[str, Any] = {"loaded": ranker is not None, "model": None}
    if ranker is None:
        out["model_hint"] = "no model is loaded: run `knowledger train`"
    else:
        meta = ranker.metadata
        out["model"] = {
            "version": meta.version,
            "model_name": meta.model_name,
            "trained_at": meta.created_at,
            "data_fingerprint": meta.data_fingerprint,
            "seed": meta.seed,
            "format_version": meta.format_version,
            "feature_dims": to_jsonable(meta.feature_dims),
            "params": to_jsonable(meta.params),
            "metrics": to_jsonable(meta.metrics),
            "feature_dim": ranker.feature_dim,
            "n_products": ranker.n_products,
            "explanations": ranker.knowledge is not None,
        }
    reports = runtime.settings.reports_dir
    out["benchmark"] = None
    benchmark = reports / BENCHMARK_FILE
    if benchmark.is_file():
        try:
            out["benchmark"] = _benchmark_summary(benchmark)
        except (OSError, ValueError) as exc:
            out["benchmark_error"] = f"{benchmark}: unreadable ({exc})"
            out["benchmark_hint"] = BENCH_HINT
    else:
        out["benchmark_hint"] = BENCH_HINT
    plot = reports / PLOT_FILE
    out["plot"] = {"available": plot.is_file(), "url": PLOT_URL}
    return out


@router.get(f"/reports/{PLOT_FILE}", response_class=FileResponse)
def comparison_plot(_: OperatorDep, runtime: RuntimeDep) -> FileResponse:
    """The benchmark's model-comparison plot (PNG), written by ``make bench-recommender``."""
    path = runtime.settings.reports_dir / PLOT_FILE
    if not path.is_file():
        raise NotFound(f"no benchmark plot at {path}: {BENCH_HINT}", hint=BENCH_HINT)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})


def _benchmark_summary(path: Path) -> dict[str, Any]:
    """The compact view of ``scripts/bench_recommender.py``'s JSON: the headline metrics per data set and
    model, the serving timings, and when the file was written."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    datasets: dict[str, Any] = {}
    for name, result in (raw.get("datasets") or {}).items():
        if not isinstance(result, dict):
            continue
        models = result.get("models") or {}
        datasets[name] = {
            "models": {
                model_name: {m: _number(metrics.get(m)) for m in BENCH_METRICS}
                for model_name, metrics in models.items()
                if isinstance(metrics, dict)
            },
            "error": result.get("error"),
            "seconds": _number(result.get("seconds")),
        }
    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return {
        "generated_at": mtime.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "path": str(path),
        "datasets": datasets,
        "serving": to_jsonable(raw.get("serving")),
        "environment": to_jsonable(raw.get("environment")),
        "seconds": _number(raw.get("seconds")),
    }


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None
