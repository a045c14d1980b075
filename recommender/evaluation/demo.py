"""The demo world: product recommendation for cold-start learners, and recovery of the ground truth.

Worlds come from :func:`recommender.data.demo.generate_demo_world`; conversions are split in time by
:func:`recommender.data.demo.demo_interaction_data`. The main case is the cold-start user (no product
conversion before the cutoff, only the course-domain profile); warm users are reported separately.

Because a demo world is a simulation, its truth is known: ``truth.product_affinity`` are the logits the
conversions were drawn from. ``truth_spearman`` is the mean per-user Spearman correlation between a
model's scores and those true affinities over all products, i.e. how well the model recovered the
generator, beyond the few held-out conversions per user.

Hyperparameters are chosen on a separate validation world (seed 100), never on the evaluation worlds;
metrics are averaged over the evaluation worlds (seeds 0, 1, 2) to damp the noise of a few hundred
cold-start test users per world.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from recommender.data.demo import DemoSplit, demo_interaction_data, generate_demo_world
from recommender.evaluation import ModelFactory, log
from recommender.evaluator import evaluate
from recommender.models.base import Recommender
from recommender.models.blend import Blend
from recommender.models.content import ContentCosine
from recommender.models.emcdr import EMCDR
from recommender.models.hybrid import HybridTwoTower
from recommender.models.itemknn import ItemKNN
from recommender.models.popularity import Popularity

VALIDATION_WORLD = 100
EVAL_WORLDS: tuple[int, ...] = (0, 1, 2)
METRIC_KEYS: tuple[str, ...] = ("ndcg@10", "map", "precision@10", "recall@10", "hr@10", "auc", "coverage")


def demo_split(world_seed: int) -> DemoSplit:
    """The default-size world for ``world_seed``, split in time (30% of conversions held out)."""
    return demo_interaction_data(generate_demo_world(world_seed), test_fraction=0.3, seed=world_seed)


def truth_spearman(model: Recommender, split: DemoSplit, affinity: np.ndarray, users: np.ndarray) -> float:
    """Mean per-user Spearman correlation of the model's scores with the true product affinities."""
    scores = np.asarray(model.score(users, split.train), dtype=np.float64)
    values = []
    for row, u in enumerate(users):
        if np.ptp(scores[row]) == 0:
            values.append(0.0)  # a constant ranking carries no information about the truth
            continue
        rho = spearmanr(scores[row], affinity[u]).statistic
        values.append(float(rho) if np.isfinite(rho) else 0.0)
    return float(np.mean(values)) if values else float("nan")


def hybrid_factory(cfg: dict[str, Any]) -> ModelFactory:
    def make() -> HybridTwoTower:
        return HybridTwoTower(
            dim=32,
            hidden=64,
            batch_size=64,
            cold_prob=0.5,
            feature_dropout=0.2,
            wide_ridge=10.0,
            seed=0,
            **cfg,
        )

    return make


HYBRID_GRID: tuple[dict[str, Any], ...] = (
    {"epochs": 40, "wide_weight": 0.25},
    {"epochs": 40, "wide_weight": 0.5},
    {"epochs": 80, "wide_weight": 0.25},
    {"epochs": 80, "wide_weight": 0.5},
)
EMCDR_GRID: tuple[dict[str, Any], ...] = (
    {"target_dim": 8, "source_dim": 16, "ridge": 10.0},
    {"target_dim": 16, "source_dim": 16, "ridge": 10.0},
    {"target_dim": 16, "source_dim": 32, "ridge": 1.0},
)
BLEND_ALPHAS: tuple[float, ...] = (0.25, 0.5, 0.75)


def _pick(
    split: DemoSplit, grid: tuple[Any, ...], make: Callable[[Any], Recommender]
) -> tuple[Any, list[float]]:
    scores = []
    for cfg in grid:
        model = make(cfg).fit(split.train)
        scores.append(
            evaluate(model, split.train, split.test, users=split.cold_eval_users, compute_auc=False)[
                "ndcg@10"
            ]
        )
    return grid[int(np.argmax(scores))], scores


def tune(world_seed: int = VALIDATION_WORLD, fast: bool = False) -> dict[str, Any]:
    """Choose the hybrid, EMCDR and blend settings on the validation world's cold-start users."""
    split = demo_split(world_seed)
    hyb_grid = HYBRID_GRID[:1] if fast else HYBRID_GRID
    hybrid_cfg, _ = _pick(split, hyb_grid, lambda c: hybrid_factory(c)())
    emcdr_cfg, _ = _pick(split, EMCDR_GRID, lambda c: EMCDR(**c))
    alpha, _ = _pick(split, BLEND_ALPHAS, lambda a: Blend(ItemKNN(), ContentCosine(), alpha=a))
    return {
        "hybrid": dict(hybrid_cfg),
        "emcdr": dict(emcdr_cfg),
        "blend_alpha": float(alpha),
        "validation_world": world_seed,
    }


def _mean_dicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rows[0]:
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if vals:
            out[key] = float(np.nanmean(vals))
    return out


def run(fast: bool = False, worlds: tuple[int, ...] = EVAL_WORLDS) -> dict[str, Any]:
    """Cold-start (main) and warm metrics averaged over ``worlds``, plus ground-truth recovery."""
    t0 = time.perf_counter()
    if fast:
        worlds = worlds[:1]
    tuned = tune(fast=fast)
    log(f"[demo] validation world picked {tuned}")
    factories: dict[str, ModelFactory] = {
        "popularity": Popularity,
        "content": ContentCosine,
        "blend": lambda: Blend(ItemKNN(), ContentCosine(), alpha=tuned["blend_alpha"]),
        "emcdr": lambda: EMCDR(**tuned["emcdr"]),
        "hybrid": hybrid_factory(tuned["hybrid"]),
    }
    cold_rows: dict[str, list[dict[str, Any]]] = {name: [] for name in factories}
    warm_rows: dict[str, list[dict[str, Any]]] = {name: [] for name in factories}
    counts = {"cold_users": 0, "warm_users": 0}
    for seed in worlds:
        world = generate_demo_world(seed)
        split = demo_interaction_data(world, test_fraction=0.3, seed=seed)
        counts["cold_users"] += len(split.cold_eval_users)
        counts["warm_users"] += len(split.warm_eval_users)
        affinity = world.truth.product_affinity
        for name, make in factories.items():
            start = time.perf_counter()
            model = make().fit(split.train)
            train_s = time.perf_counter() - start
            cold = evaluate(model, split.train, split.test, users=split.cold_eval_users)
            cold["train_s"] = train_s
            cold["truth_spearman"] = truth_spearman(model, split, affinity, split.cold_eval_users)
            cold_rows[name].append(cold)
            if len(split.warm_eval_users):
                warm = evaluate(model, split.train, split.test, users=split.warm_eval_users)
                warm["truth_spearman"] = truth_spearman(model, split, affinity, split.warm_eval_users)
                warm_rows[name].append(warm)
        log(f"[demo] world {seed}: " + ", ".join(f"{n}={cold_rows[n][-1]['ndcg@10']:.3f}" for n in factories))
    models = {name: _mean_dicts(rows) for name, rows in cold_rows.items()}
    for name, res in models.items():
        log(f"  [demo] {name}: cold ndcg@10={res['ndcg@10']:.4f} truth_spearman={res['truth_spearman']:.3f}")
    return {
        "models": models,
        "warm": {name: _mean_dicts(rows) for name, rows in warm_rows.items() if rows},
        "worlds": list(worlds),
        "tuning": tuned,
        **counts,
        "seconds": time.perf_counter() - t0,
    }
