"""Recommender benchmark: every model on every data set, serving latency, and a comparison plot.

    python scripts/bench_recommender.py [--plot reports/recommender_comparison.png] [--fast]
        [--only ml-100k,ml-cross-domain,caravan,demo]

Prints one JSON object on stdout (progress on stderr):
``{"datasets": {NAME: {"models": {MODEL: {"ndcg@10", "map", "precision@10", "recall@10", "train_s", ...}},
...}}, "serving": {...}}``. Data sets: ``ml-100k`` (Microsoft Recommenders protocol), ``ml-cross-domain``
(genre-split MovieLens, cold users), ``caravan`` (leave-one-product-out + the ISLP propensity figures)
and ``demo`` (cold-start learners in the synthetic world, with ground-truth recovery). ``serving``
times the numpy ranking path for 1,000 products on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from recommender.evaluation import log  # noqa: E402

DATASETS = ("ml-100k", "ml-cross-domain", "caravan", "demo")
METRICS = ("ndcg@10", "map", "precision@10", "recall@10")


def run_dataset(name: str, fast: bool) -> dict[str, Any]:
    """Run one protocol; a failure is recorded in the output instead of aborting the whole benchmark."""
    t0 = time.perf_counter()
    try:
        if name == "ml-100k":
            from recommender.evaluation import movielens

            result = movielens.run(fast=fast)
        elif name == "ml-cross-domain":
            from recommender.evaluation import cross_domain

            result = cross_domain.run(fast=fast)
        elif name == "caravan":
            from recommender.evaluation import caravan

            result = caravan.run(fast=fast)
        elif name == "demo":
            from recommender.evaluation import demo

            result = demo.run(fast=fast)
        else:
            raise ValueError(f"unknown data set {name!r}; choose from {DATASETS}")
    except Exception as exc:  # a missing download must not hide the other results
        log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}", "models": {}}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def serving_benchmark(n_products: int = 1000, n_requests: int = 2000) -> dict[str, Any]:
    """Train a small hybrid on a demo world with ``n_products`` products, save, load, time ``rank``."""
    from threadpoolctl import threadpool_limits

    from recommender.data.demo import demo_interaction_data, generate_demo_world
    from recommender.models.hybrid import HybridTwoTower
    from recommender.serving import ProductRanker, save_hybrid_artifact

    world = generate_demo_world(0, n_products=n_products)
    split = demo_interaction_data(world, seed=0)
    model = HybridTwoTower(dim=64, hidden=128, epochs=5, cold_prob=0.5, wide_ridge=10.0, seed=0).fit(
        split.train
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = save_hybrid_artifact(model, split.train, tmp, knowledge=split.knowledge)
        ranker = ProductRanker.load(path)
    feats = np.asarray(split.train.user_features, dtype=np.float32)
    users = np.arange(n_requests) % feats.shape[0]
    with threadpool_limits(limits=1):
        for u in users[:50]:  # warm-up
            ranker.rank(feats[u], k=10, explain=False)
        t0 = time.perf_counter()
        for u in users:
            ranker.rank(feats[u], k=10, explain=False)
        score_ms = (time.perf_counter() - t0) / len(users) * 1000
        n_explained = min(300, n_requests)
        t0 = time.perf_counter()
        for u in users[:n_explained]:
            ranker.rank(feats[u], k=10, explain=True)
        explain_ms = (time.perf_counter() - t0) / n_explained * 1000
        t0 = time.perf_counter()
        ranker.score(feats[users])
        batch_ms = (time.perf_counter() - t0) / len(users) * 1000
    return {
        "n_products": int(ranker.n_products),
        "feature_dim": int(ranker.feature_dim),
        "embedding_dim": int(model.item_embeddings.shape[1]),
        "requests": len(users),
        "threads": 1,
        "ms_per_user": round(score_ms, 4),
        "ms_per_user_with_explanations": round(explain_ms, 4),
        "ms_per_user_batched": round(batch_ms, 5),
        "target_ms_per_user": 1.0,
        "meets_target": bool(score_ms <= 1.0),
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """One panel per data set: nDCG@10 per model (the headline metric of every protocol)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in DATASETS if results.get(n, {}).get("models")]
    if not names:
        log("nothing to plot")
        return
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        models = results[name]["models"]
        labels = list(models)
        values = [models[m]["ndcg@10"] for m in labels]
        bars = ax.barh(labels, values, color=["#4C72B0" if "hybrid" not in m else "#DD8452" for m in labels])
        for bar, value in zip(bars, values, strict=True):
            ax.text(value, bar.get_y() + bar.get_height() / 2, f" {value:.3f}", va="center", fontsize=8)
        ax.set_title(
            {
                "ml-100k": "MovieLens-100k (MS Recommenders split)",
                "ml-cross-domain": "MovieLens genres, cold users",
                "caravan": "Caravan, leave one product out",
                "demo": "Demo world, cold-start learners",
            }[name],
            fontsize=9,
        )
        ax.set_xlabel("nDCG@10")
        ax.set_xlim(0, max(values) * 1.25 if values else 1)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("KnowLedger recommender: model comparison", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=ROOT / "reports" / "recommender_comparison.png")
    parser.add_argument("--fast", action="store_true", help="smaller grids and fewer epochs (smoke run)")
    parser.add_argument("--only", default=",".join(DATASETS), help="comma-separated subset of data sets")
    parser.add_argument("--no-serving", action="store_true")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in DATASETS]
    if unknown:
        parser.error(f"unknown data sets {unknown}; choose from {', '.join(DATASETS)}")
    t0 = time.perf_counter()
    datasets: dict[str, Any] = {}
    for name in chosen:
        log(f"=== {name}")
        datasets[name] = run_dataset(name, args.fast)
    out: dict[str, Any] = {"datasets": datasets}
    if not args.no_serving:
        log("=== serving")
        out["serving"] = serving_benchmark()
        log(
            f"serving: {out['serving']['ms_per_user']:.3f} ms per user "
            f"for {out['serving']['n_products']} products"
        )
    out["environment"] = {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "fast": bool(args.fast),
    }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    plot(datasets, args.plot)
    out["plot"] = str(args.plot)
    log(f"plot written to {args.plot}")
    print(json.dumps(out, indent=2, default=_default))
    return 0


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
