"""The operator's view of the served model and of the latest recommender benchmark
(``make bench-recommender``)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from backend.core.jsonable import to_jsonable
from backend.errors import NotFound
from backend.schemas.insights import ModelReport, PlotInfo, ServedModel
from backend.services.model import ModelSlot

BENCHMARK_FILE = "recommender_benchmark.json"
PLOT_FILE = "recommender_comparison.png"
PLOT_URL = f"/api/v1/operator/reports/{PLOT_FILE}"
BENCH_HINT = "run make bench-recommender"
#: The headline metrics of every benchmark protocol, per model.
BENCH_METRICS = ("ndcg@10", "map", "precision@10", "recall@10")
#: Figures shown when the benchmark reports them: hit rate at 1 and the spread over seeds.
BENCH_EXTRAS = ("hr@1", "ndcg@10_std", "hr@1_std")


class InsightsService:
    def __init__(self, model: ModelSlot, reports_dir: Path) -> None:
        self._model = model
        self._reports = reports_dir

    def model_report(self) -> ModelReport:
        """The served model (version, training time, metrics recorded at training) and the latest
        recommender benchmark summary, if one has been run."""
        ranker = self._model.ranker
        served = hint = None
        if ranker is None:
            hint = "no model is loaded: run `knowledger train`"
        else:
            meta = ranker.metadata
            served = ServedModel(
                version=meta.version,
                model_name=meta.model_name,
                trained_at=meta.created_at,
                data_fingerprint=meta.data_fingerprint,
                seed=meta.seed,
                format_version=meta.format_version,
                feature_dims=to_jsonable(meta.feature_dims),
                params=to_jsonable(meta.params),
                metrics=to_jsonable(meta.metrics),
                feature_dim=ranker.feature_dim,
                n_products=ranker.n_products,
                explanations=ranker.knowledge is not None,
            )
        benchmark_file = self._reports / BENCHMARK_FILE
        benchmark = error = bench_hint = None
        if benchmark_file.is_file():
            try:
                benchmark = _benchmark_summary(benchmark_file)
            except (OSError, ValueError) as exc:
                error, bench_hint = f"{benchmark_file}: unreadable ({exc})", BENCH_HINT
        else:
            bench_hint = BENCH_HINT
        # The hints and the error appear only when they say something (the route excludes unset fields).
        notes = {"model_hint": hint, "benchmark_error": error, "benchmark_hint": bench_hint}
        return ModelReport(
            loaded=ranker is not None,
            model=served,
            benchmark=benchmark,
            plot=PlotInfo(available=(self._reports / PLOT_FILE).is_file(), url=PLOT_URL),
            **{k: v for k, v in notes.items() if v is not None},
        )

    def plot(self) -> Path:
        """The benchmark's model-comparison plot (PNG)."""
        path = self._reports / PLOT_FILE
        if not path.is_file():
            raise NotFound(f"no benchmark plot at {path}: {BENCH_HINT}", hint=BENCH_HINT)
        return path


def _benchmark_summary(path: Path) -> dict[str, Any]:
    """The compact view of ``scripts/bench_recommender.py``'s JSON: the headline metrics per data set and
    model (with the served configuration's name), the serving timings, and when the file was written."""
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
                model_name: {
                    m: _number(metrics.get(m))
                    for m in (*BENCH_METRICS, *(e for e in BENCH_EXTRAS if e in metrics))
                }
                for model_name, metrics in models.items()
                if isinstance(metrics, dict)
            },
            "error": result.get("error"),
            "seconds": _number(result.get("seconds")),
        }
        # the served configuration's name and the protocol's headline metric, when the run names them
        for key in ("served", "metric"):
            if isinstance(result.get(key), str):
                datasets[name][key] = result[key]
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
