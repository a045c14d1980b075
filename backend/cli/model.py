"""``knowledger train`` and ``knowledger evaluate``: the recommender the service serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backend.cli.app import app, fail, out, user_errors
from backend.cli.service import _service_settings, _train_with_progress


@app.command("train")
def train_command(
    epochs: Annotated[int, typer.Option(min=1, max=500, help="Training epochs of the torch network.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the demo world and of training.")] = 0,
    model_path: Annotated[
        Path | None, typer.Option("--out", help="Artifact root (default KNOWLEDGER_MODEL_PATH or var/model).")
    ] = None,
) -> None:
    """Train the served recommender on the demo world (every candidate tuned on validation learners,
    blended per route) and save a versioned artifact the service loads."""
    settings = _service_settings()
    root = model_path or settings.resolved_model_path
    with user_errors():
        artifact, metrics = _train_with_progress(root, epochs, seed)
    out.print(f"artifact {artifact}")
    out.print(
        json.dumps({k: {m: round(float(v), 4) for m, v in vals.items()} for k, vals in metrics.items()})
    )


@app.command("evaluate")
def evaluate_command(
    artifact: Annotated[
        Path | None,
        typer.Option(help="Artifact to evaluate (default: the newest under KNOWLEDGER_MODEL_PATH)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the demo world the artifact was trained on.")] = 0,
    k: Annotated[int, typer.Option(min=1, max=100, help="Cut-off of the ranking metrics.")] = 10,
    compare: Annotated[
        bool, typer.Option(help="Also run the full model comparison over several demo worlds (minutes).")
    ] = False,
) -> None:
    """Score the served artifact through the serving path on the demo world's held-out, cold-start
    learners (NDCG, recall, hit rate at k) against popularity; JSON on stdout."""
    import numpy as np

    from backend.services.seed import demo_split
    from recommender.artifacts import resolve_artifact
    from recommender.metrics import hit_rate_at_k, ndcg_at_k, recall_at_k
    from recommender.serving import ProductRanker

    settings = _service_settings()
    root = artifact or settings.resolved_model_path
    path = resolve_artifact(root) if root.exists() else None
    if path is None:
        fail(f"--artifact: no model artifact at {root}: run `knowledger train` first")
    with user_errors():
        ranker = ProductRanker.load(path)
        split = demo_split(seed=seed)
        popularity = np.asarray(split.train.interactions.sum(axis=0)).ravel()
        rows: dict[str, list[list[float]]] = {"hybrid": [], "popularity": []}
        for u in split.cold_eval_users:
            relevant = set(split.test[u].indices.tolist())
            features = split.profiles.profile(split.user_ids[u]).features()
            ranked = [r.index for r in ranker.rank(features, k=k, explain=False)]
            pop = [int(i) for i in np.argsort(-popularity, kind="stable")[:k]]
            for name, top in (("hybrid", ranked), ("popularity", pop)):
                rows[name].append(
                    [
                        ndcg_at_k(top, relevant, k),
                        recall_at_k(top, relevant, k),
                        hit_rate_at_k(top, relevant, k),
                    ]
                )
        report: dict[str, object] = {
            "artifact": str(path),
            "model_version": ranker.metadata.version,
            "users": len(split.cold_eval_users),
            "k": k,
        }
        for name, values in rows.items():
            mean = np.mean(np.asarray(values), axis=0)
            report[name] = {
                f"ndcg@{k}": round(float(mean[0]), 4),
                f"recall@{k}": round(float(mean[1]), 4),
                f"hit_rate@{k}": round(float(mean[2]), 4),
            }
        if compare:
            from recommender.evaluation.demo import run as run_comparison

            report["comparison"] = run_comparison(fast=True)
    out.print(json.dumps(report, indent=2, default=str))
