"""``knowledger train`` and ``knowledger evaluate``: the recommender the service serves."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backend.cli.app import app, err, fail, out, user_errors
from backend.cli.service import _service_settings, _train_with_progress

if TYPE_CHECKING:
    from backend.core.config import Settings
    from backend.services.lifecycle import ModelLifecycle
    from backend.services.training import ModelTrainer


class DataSource(StrEnum):
    demo = "demo"
    ingested = "ingested"


@app.command("train")
def train_command(
    epochs: Annotated[int, typer.Option(min=1, max=500, help="Training epochs of the torch network.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the demo world and of training.")] = 0,
    model_path: Annotated[
        Path | None, typer.Option("--out", help="Artifact root (default KNOWLEDGER_MODEL_PATH or var/model).")
    ] = None,
    data: Annotated[
        DataSource,
        typer.Option(
            help="demo: the demo world, into an artifact under --out; ingested: the service's own data "
            "(KNOWLEDGER_DATABASE_URL), registered as a candidate scored against the served version."
        ),
    ] = DataSource.demo,
    promote: Annotated[
        bool, typer.Option(help="With --data ingested: promote the candidate if the quality gate passes.")
    ] = False,
) -> None:
    """Train the served recommender (every candidate tuned on validation learners, blended per route):
    on the demo world into a versioned artifact the service loads, or on the platform's ingested data into
    the model registry."""
    settings = _service_settings()
    if data is DataSource.ingested:
        _train_ingested(settings, epochs, seed, promote)
        return
    if promote:
        fail("--promote: only with --data ingested (a demo artifact is adopted by a service with no model)")
    root = model_path or settings.resolved_model_path
    with user_errors():
        artifact, metrics = _train_with_progress(root, epochs, seed)
    out.print(f"artifact {artifact}")
    out.print(
        json.dumps({k: {m: round(float(v), 4) for m, v in vals.items()} for k, vals in metrics.items()})
    )


def _train_ingested(settings: Settings, epochs: int, seed: int, promote: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with user_errors():
        lifecycle, trainer = _model_services(settings)
        prepared = trainer.prepare(seed)
        with Progress(
            TextColumn("training on the ingested data"),
            BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("train", total=None)
            row = trainer.train(
                epochs=epochs,
                seed=seed,
                prepared=prepared,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        out.print(json.dumps({"version": row.version, "status": row.status, "gate": row.gate}, default=str))
        if promote:
            _promote(lifecycle, row.version, force=False)


def _model_services(settings: Settings) -> tuple[ModelLifecycle, ModelTrainer]:
    """The registry, the lifecycle and the trainer over the service's database (no chain needed)."""
    from backend import bootstrap
    from backend.services.lifecycle import ModelLifecycle
    from backend.services.model import ModelSlot
    from backend.services.profiles import ProfileRefresher
    from backend.services.registry import ModelRegistry
    from backend.services.training import ModelTrainer

    engine, _ = bootstrap.open_database(settings)
    bootstrap.migrate_database(engine, settings)
    registry = ModelRegistry(engine, settings.state_dir / "model-cache")
    served = registry.served_version()
    slot = ModelSlot(None if served is None else registry.load(served))
    refresher = ProfileRefresher(engine, slot, registry.product_rows)
    lifecycle = ModelLifecycle(
        registry, slot, refresher, metric=settings.promotion_metric, tolerance=settings.promotion_tolerance
    )
    return lifecycle, ModelTrainer(engine, registry, slot, lifecycle, settings.resolved_model_path)


def _promote(lifecycle: ModelLifecycle, version: str, force: bool) -> None:
    result = lifecycle.promote(version, actor="cli", force=force)
    err.print(f"serving {version} (was {result['previous']}); rebuilding the learners' profiles for it")
    lifecycle.wait_rebuilt()
    out.print(json.dumps(result, default=str))


model_app = typer.Typer(help="The model registry: versions, promotion through the quality gate, rollback.")
app.add_typer(model_app, name="model")


@model_app.command("list")
def model_list() -> None:
    """Every model version (newest first) with its status and held-out metric; the served one marked."""
    from rich.table import Table

    settings = _service_settings()
    with user_errors():
        lifecycle, _ = _model_services(settings)
        registry = lifecycle.registry
        served = registry.served_version()
        table = Table("version", "status", "source", lifecycle.metric, "created")
        for row in registry.versions():
            value = row.metrics.get(lifecycle.metric)
            table.add_row(
                ("* " if row.version == served else "  ") + row.version,
                row.status,
                row.source,
                "" if value is None else f"{float(value):.4f}",
                row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
    out.print(table)


@model_app.command("import")
def model_import(
    artifact: Annotated[Path, typer.Argument(help="An artifact directory (what `knowledger train` wrote).")],
) -> None:
    """Register an artifact trained elsewhere as a candidate version. It was not scored against the served
    version on the same split, so the quality gate refuses it unless the promotion is forced."""
    from backend.services.registry import RegistryError
    from recommender.artifacts import resolve_artifact

    settings = _service_settings()
    path = resolve_artifact(artifact) if artifact.exists() else None
    if path is None:
        fail(f"ARTIFACT: no model artifact at {artifact}")
    with user_errors():
        lifecycle, _ = _model_services(settings)
        try:
            row = lifecycle.registry.register(path, source="imported")
        except RegistryError as exc:
            fail(f"ARTIFACT: {exc}")
    out.print(json.dumps({"version": row.version, "status": row.status}))


@model_app.command("promote")
def model_promote(
    version: Annotated[str, typer.Argument(help="The version to serve (see `knowledger model list`).")],
    force: Annotated[
        bool, typer.Option(help="Serve it even if the quality gate refuses (recorded).")
    ] = False,
) -> None:
    """Serve VERSION if it passes the quality gate against the served one; every running service swaps to it
    within KNOWLEDGER_MODEL_FOLLOW_INTERVAL_S, without a failed request."""
    settings = _service_settings()
    with user_errors():
        lifecycle, _ = _model_services(settings)
        _promote(lifecycle, version, force)


@model_app.command("rollback")
def model_rollback() -> None:
    """Serve again the version served before the current one."""
    settings = _service_settings()
    with user_errors():
        lifecycle, _ = _model_services(settings)
        result = lifecycle.rollback(actor="cli")
        lifecycle.wait_rebuilt()
    out.print(json.dumps(result, default=str))


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
