"""The demo world: product recommendation for cold-start learners, and recovery of the ground truth.

Worlds come from :func:`recommender.data.demo.generate_demo_world`; conversions are split in time by
:func:`recommender.data.demo.demo_interaction_data`. The main case is the cold-start user (no product
conversion before the cutoff, only the course-domain profile); warm users are reported separately
(``ndcg@10_warm``).

The served configuration is trained exactly as ``knowledger train`` trains it (:func:`served_setup`:
the same candidates and validation split, carved out of the world's training period) into an artifact
that the ranker loads and scores. Worlds 0, 1 and 2 are the three seeds.

Because a demo world is a simulation, its truth is known: ``truth.product_affinity`` are the logits the
conversions were drawn from. ``truth_spearman`` is the mean per-user Spearman correlation between a
model's scores and those true affinities over all products for the cold-start users, i.e. how well the
model recovered the generator, beyond the few held-out conversions per user.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from recommender.data.demo import DemoSplit, demo_interaction_data, generate_demo_world
from recommender.evaluation import Queries, aggregate, compare_to_singles, served_results
from recommender.models.base import InteractionData
from recommender.models.content import ContentCosine
from recommender.models.emcdr import EMCDR
from recommender.models.hybrid import HybridTwoTower
from recommender.training import SERVED, Candidate, default_candidates
from recommender.tuning import HoldoutSplitter

EVAL_WORLDS: tuple[int, ...] = (0, 1, 2)
#: The two-tower hybrid as it was served on the demo world before.
HYBRID: dict[str, Any] = {
    "dim": 32,
    "hidden": 64,
    "batch_size": 64,
    "cold_prob": 0.5,
    "feature_dropout": 0.2,
    "wide_ridge": 10.0,
    "wide_weight": 0.25,
    "epochs": 40,
    "seed": 0,
}


def demo_split(world_seed: int) -> DemoSplit:
    """The default-size world for ``world_seed``, split in time (30% of conversions held out)."""
    return demo_interaction_data(generate_demo_world(world_seed), test_fraction=0.3, seed=world_seed)


def served_setup(
    data: InteractionData, epochs: int | None = None, seed: int = 0
) -> tuple[HoldoutSplitter, dict[str, Candidate]]:
    """The validation split and candidates of the served model on a demo world (``knowledger train``):
    a third of the learners with conversions are validation users, half of them cold (every conversion
    hidden), half warm (a third of their conversions hidden)."""
    splitter = HoldoutSplitter(fraction=0.34, users=0.34, cold_share=0.5, min_items=1, seed=seed)
    out = default_candidates(data, "mixed", epochs=epochs)
    out["content"] = Candidate(ContentCosine)
    out["emcdr"] = Candidate(
        EMCDR, tuple({"target_dim": t, "source_dim": 16, "ridge": 10.0} for t in (8, 16))
    )
    return splitter, out


def truth_spearman(scores: np.ndarray, affinity: np.ndarray) -> float:
    """Mean per-user Spearman correlation of ``scores`` rows with the true affinities' rows."""
    values = []
    for row, truth in zip(scores, affinity, strict=True):
        if np.ptp(row) == 0:
            values.append(0.0)  # a constant ranking carries no information about the truth
            continue
        rho = spearmanr(row, truth).statistic
        values.append(float(rho) if np.isfinite(rho) else 0.0)
    return float(np.mean(values)) if values else float("nan")


def run_world(seed: int, fast: bool = False) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every model on one world: cold-start learners (headline) and warm ones (``*_warm``)."""
    world = generate_demo_world(seed)
    split = demo_interaction_data(world, test_fraction=0.3, seed=seed)
    users = split.eval_users
    queries = Queries.rows(split.train, split.test, users=users)
    cold = split.cold_start[users]
    splitter, cands = served_setup(split.train, epochs=5 if fast else None)
    baselines: dict[str, Any] = {} if fast else {"hybrid_two_tower": lambda: HybridTwoTower(**HYBRID)}
    results, report, scorers = served_results(
        f"demo world {seed}",
        split.train,
        queries,
        splitter,
        cands,
        baselines,
        knowledge=split.knowledge,
        segments={"cold": cold, "warm": ~cold},
    )
    cold_users = users[cold]
    feats = np.asarray(split.train.user_features)[cold_users]
    history = split.train.interactions[cold_users]
    for name, score in scorers.items():
        results[name]["truth_spearman"] = truth_spearman(
            np.asarray(score(history, feats)), world.truth.product_affinity[cold_users]
        )
    # the headline of this protocol is the cold-start learners
    for entry in results.values():
        entry["ndcg@10_all"], entry["hr@1_all"] = entry["ndcg@10"], entry["hr@1"]
        entry["ndcg@10"], entry["hr@1"] = entry["ndcg@10_cold"], entry["hr@1_cold"]
    return results, report


def run(fast: bool = False, worlds: tuple[int, ...] = EVAL_WORLDS) -> dict[str, Any]:
    """Cold-start (headline) and warm metrics, mean and spread over ``worlds``, with truth recovery."""
    t0 = time.perf_counter()
    worlds = worlds[:1] if fast else worlds
    runs, selections = [], []
    for seed in worlds:
        res, report = run_world(seed, fast)
        runs.append(res)
        selections.append({"world": seed, **report})
    models = aggregate(
        runs, keys=("ndcg@10", "hr@1", "ndcg@10_warm", "ndcg@10_all", "truth_spearman", "map", "train_s")
    )
    return {
        "served": SERVED,
        "metric": "ndcg@10 (cold-start learners)",
        "models": models,
        "worlds": list(worlds),
        "selection": selections,
        **compare_to_singles(models, "ndcg@10"),
        "cold_users": int(sum(r[SERVED]["n_users_cold"] for r in runs)),
        "warm_users": int(sum(r[SERVED].get("n_users_warm", 0) for r in runs)),
        "seconds": time.perf_counter() - t0,
    }
