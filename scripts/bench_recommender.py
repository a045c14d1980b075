"""Recommender benchmark: the served model and every baseline on every data set, serving latency, a plot.

    python scripts/bench_recommender.py [--plot reports/recommender_comparison.png]
        [--json reports/recommender_benchmark.json] [--fast]
        [--only ml-100k,ml-cross-domain,ml-cross-domain-sparse,caravan,demo]

Prints one JSON object on stdout (progress on stderr) and writes the same to ``--json`` (read by the
operator API's ``GET /api/v1/operator/model``):
``{"datasets": {NAME: {"served": "served", "metric": ..., "models": {MODEL: {"ndcg@10", "hr@1", "map",
"precision@10", "recall@10", "train_s", "<metric>_std", ...}}, ...}}, "serving": {...}}``.

On every data set the served configuration is trained by the function behind ``knowledger train``,
saved as an artifact, loaded by ``ProductRanker`` and scored through it: ``models[served]`` is that
artifact's figure (mean over the protocol's three seeds, spread in ``*_std``), next to the blend without
its torch member (``served_without_torch``), every tuned family on its own and the baselines of the
same run. Data sets: ``ml-100k`` (Microsoft Recommenders protocol), ``ml-cross-domain`` and
``ml-cross-domain-sparse`` (genre-split MovieLens, cold users; 3 target movies a user in the sparse
one), ``caravan`` (next product, hr@1; plus the 5-fold propensity AUC and the ISLP lab) and ``demo``
(cold-start learners in the synthetic world, with ground-truth recovery). ``serving`` times the served
model's numpy ranking path for 1,000 products on one CPU thread: scoring alone (the 1 ms target) and
the full request (profile from a raw course history, ranking, explanations).
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

DATASETS = ("ml-100k", "ml-cross-domain", "ml-cross-domain-sparse", "caravan", "demo")
METRICS = ("ndcg@10", "hr@1", "map", "precision@10", "recall@10")


def run_dataset(name: str, fast: bool) -> dict[str, Any]:
    """Run one protocol; a failure is recorded in the output instead of aborting the whole benchmark."""
    t0 = time.perf_counter()
    try:
        if name == "ml-100k":
            from recommender.evaluation import movielens

            result = movielens.run(fast=fast)
        elif name in ("ml-cross-domain", "ml-cross-domain-sparse"):
            from recommender.evaluation import cross_domain

            result = cross_domain.run(fast=fast, sparse=name.endswith("sparse"))
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


def serving_benchmark(n_products: int = 1000, n_requests: int = 2000, n_full: int = 300) -> dict[str, Any]:
    """Train the served configuration on a demo world with ``n_products`` products exactly as
    ``knowledger train`` does, save, load, time the requests.

    ``ms_per_user``: ``rank(..., explain=False)`` on a ready profile vector with the user's product
    history (scoring and top-k: the quantity the 1 ms target is about). ``ms_per_user_with_explanations``:
    the same with explanations; ``ms_explain`` is the difference. ``ms_per_request_full``: the whole
    request for ``n_full`` users: the profile built from the user's raw course history
    (``ProfileBuilder.profile_for``, ``ms_profile`` on its own) and ``rank(..., explain=True)`` citing
    the user's courses. Everything runs on one CPU thread.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from recommender.data.demo import demo_interaction_data, generate_demo_world
    from recommender.evaluation.demo import served_setup
    from recommender.serving import ProductRanker
    from recommender.training import train_served

    world = generate_demo_world(0, n_products=n_products)
    split = demo_interaction_data(world, seed=0)
    splitter, candidates = served_setup(split.train, epochs=5)
    with tempfile.TemporaryDirectory() as tmp:
        path, fit = train_served(split.train, tmp, splitter, candidates, knowledge=split.knowledge)
        ranker = ProductRanker.load(path)
    feats = np.asarray(split.train.user_features, dtype=np.float32)
    n_users = feats.shape[0]
    users = np.arange(n_requests) % n_users
    owned = [split.train.interactions[u].indices.tolist() for u in range(n_users)]
    events = split.train_dataset.interactions
    by_user = dict(tuple(events.groupby("user_id", sort=False)))
    empty = events.iloc[0:0]
    histories: list[pd.DataFrame] = [by_user.get(uid, empty) for uid in split.user_ids]
    row_of = {cid: i for i, cid in enumerate(split.train_dataset.items["item_id"])}
    courses = [[row_of[c] for c in h["item_id"].unique() if c in row_of] for h in histories]
    builder = split.profile_builder
    with threadpool_limits(limits=1):
        for u in users[:50]:  # warm-up
            ranker.rank(feats[u], k=10, history=owned[u], explain=False)
            builder.profile_for(histories[u])
        t0 = time.perf_counter()
        for u in users:
            ranker.rank(feats[u], k=10, history=owned[u], explain=False)
        score_ms = (time.perf_counter() - t0) / len(users) * 1000
        n_explained = min(n_full, n_requests)
        t0 = time.perf_counter()
        for u in users[:n_explained]:
            ranker.rank(feats[u], k=10, history=owned[u], course_indices=courses[u], explain=True)
        explain_ms = (time.perf_counter() - t0) / n_explained * 1000
        profile_s = 0.0
        t0 = time.perf_counter()
        for u in users[:n_explained]:
            t_profile = time.perf_counter()
            features = builder.profile_for(histories[u], user_id=split.user_ids[u]).features()
            profile_s += time.perf_counter() - t_profile
            ranker.rank(features, k=10, history=owned[u], course_indices=courses[u], explain=True)
        full_ms = (time.perf_counter() - t0) / n_explained * 1000
        t0 = time.perf_counter()
        ranker.score(feats[users])
        batch_ms = (time.perf_counter() - t0) / len(users) * 1000
    with_history = sum(1 for u in users if owned[u])
    return {
        "model": ranker.metadata.model_name,
        "members": sorted(fit.model.members),
        "n_products": int(ranker.n_products),
        "feature_dim": int(ranker.feature_dim),
        "requests": len(users),
        "requests_with_product_history": int(with_history),
        "full_requests": n_explained,
        "full_requests_with_course_history": int(sum(1 for u in users[:n_explained] if len(histories[u]))),
        "threads": 1,
        "ms_per_user": round(score_ms, 4),
        "ms_per_user_with_explanations": round(explain_ms, 4),
        "ms_explain": round(explain_ms - score_ms, 4),
        "ms_profile": round(profile_s / n_explained * 1000, 4),
        "ms_per_request_full": round(full_ms, 4),
        "ms_per_user_batched": round(batch_ms, 5),
        "target_ms_per_user": 1.0,
        "target_applies_to": "ms_per_user (scoring and top-k on a ready profile)",
        "meets_target": bool(score_ms <= 1.0),
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """One panel per data set: the protocol's headline metric per model, the served model in orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in DATASETS if results.get(n, {}).get("models")]
    metric_of = {n: str(results[n].get("metric", "ndcg@10")).split(" ")[0] for n in names}
    if not names:
        log("nothing to plot")
        return
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 4.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        models = results[name]["models"]
        metric = metric_of[name]
        labels = list(models)
        values = [models[m].get(metric, float("nan")) for m in labels]
        served = results[name].get("served")
        bars = ax.barh(labels, values, color=["#DD8452" if m == served else "#4C72B0" for m in labels])
        for bar, value in zip(bars, values, strict=True):
            ax.text(value, bar.get_y() + bar.get_height() / 2, f" {value:.3f}", va="center", fontsize=8)
        ax.set_title(
            {
                "ml-100k": "MovieLens-100k (MS Recommenders split)",
                "ml-cross-domain": "MovieLens genres, cold users",
                "ml-cross-domain-sparse": "MovieLens genres, cold users, 3 per user",
                "caravan": "Caravan, next product (hr@1)",
                "demo": "Demo world, cold-start learners",
            }[name],
            fontsize=9,
        )
        ax.set_xlabel(metric)
        ax.set_xlim(0, np.nanmax(values) * 1.3 if values else 1)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("KnowLedger recommender: the served model (orange) against every baseline", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=ROOT / "reports" / "recommender_comparison.png")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "reports" / "recommender_benchmark.json",
        help="also write the JSON result here",
    )
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
            f"serving: {out['serving']['ms_per_user']:.3f} ms per user scoring, "
            f"{out['serving']['ms_per_request_full']:.3f} ms per full request "
            f"for {out['serving']['n_products']} products"
        )
    out["environment"] = {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "fast": bool(args.fast),
    }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    plot(datasets, args.plot)
    out["plot"] = _shown(args.plot)
    log(f"plot written to {args.plot}")
    text = json.dumps(out, indent=2, default=_default)
    write_json(text, args.json)
    log(f"JSON written to {args.json}")
    print(text)
    return 0


def _shown(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it (the JSON is shared between machines)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_json(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
