"""ml-cross-domain: transfer from one group of MovieLens genres to a disjoint group, for cold users.

The stand-in for KnowLedger's course -> product transfer, on real behaviour. Every movie belongs to
exactly one domain: the *target* domain holds the movies with at least one genre in
:data:`TARGET_GENRES` (action, thrillers, sci-fi, crime, ...), the *source* domain the rest (drama,
comedy, romance, children's, ...). Users rate in both, so they overlap. A random ``cold_fraction`` of
the users with at least ``min_per_domain`` ratings in each domain have their whole target history
hidden: for them the models see only the source behaviour (``user_features``: the multi-hot of their
source-domain ratings) and must rank target movies, exactly like a learner whose course history is
known but who never bought a financial product.

Models: target-domain popularity, EMCDR-style (SVD in both domains + ridge map), the hybrid two-tower.
Hyperparameters are chosen on validation cold users carved out of the training users, never on the
held-out ones.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.data import movielens
from recommender.evaluator import evaluate
from recommender.models.base import InteractionData, Recommender
from recommender.models.emcdr import EMCDR
from recommender.models.hybrid import HybridTwoTower
from recommender.models.popularity import Popularity

#: A movie with any of these genres belongs to the target domain; every other movie to the source.
TARGET_GENRES: frozenset[str] = frozenset(
    {"Action", "Adventure", "Sci-Fi", "Thriller", "Crime", "Horror", "War", "Western", "Mystery",
     "Film-Noir", "Fantasy"}
)


@dataclass(frozen=True)
class CrossDomainSplit:
    """Target-domain training data (cold rows empty), held-out target rows and the cold user indices."""

    train: InteractionData
    test: sp.csr_matrix
    cold_users: np.ndarray
    source_item_ids: np.ndarray
    target_item_ids: np.ndarray


def hide_target_history(
    data: InteractionData, users: np.ndarray
) -> tuple[InteractionData, sp.csr_matrix]:
    """Copy of ``data`` with the target rows of ``users`` emptied, and those rows as a test matrix."""
    x = sp.csr_matrix(data.interactions)
    mask = np.zeros(x.shape[0], dtype=bool)
    mask[np.asarray(users, dtype=np.int64)] = True
    keep = sp.diags((~mask).astype(np.float32))
    held = sp.diags(mask.astype(np.float32))
    train_x = sp.csr_matrix(keep @ x)
    train_x.eliminate_zeros()
    test_x = sp.csr_matrix(held @ x)
    test_x.eliminate_zeros()
    hidden = InteractionData(train_x, data.item_features, data.user_features, dict(data.meta))
    return hidden, test_x


def pick_cold_users(
    interactions: sp.csr_matrix,
    user_features: np.ndarray,
    fraction: float,
    min_per_domain: int,
    seed: int,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """A seeded random ``fraction`` of the users with >= ``min_per_domain`` events in both domains."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n_target = np.diff(sp.csr_matrix(interactions).indptr)
    n_source = (np.asarray(user_features) != 0).sum(axis=1)
    eligible = np.flatnonzero((n_target >= min_per_domain) & (n_source >= min_per_domain))
    if candidates is not None:
        eligible = np.intersect1d(eligible, candidates)
    rng = np.random.default_rng(seed)
    n_pick = max(1, int(round(fraction * len(eligible))))
    return np.sort(rng.choice(eligible, size=n_pick, replace=False))


def ml_cross_domain_split(cold_fraction: float = 0.2, min_per_domain: int = 5, seed: int = 42) -> CrossDomainSplit:
    """Build the split from ml-100k (downloads the recbole wheel on first use)."""
    ratings = movielens.load_ratings()
    items = movielens.load_items()
    is_target = items["genres"].apply(lambda g: bool(set(g) & TARGET_GENRES)).to_numpy()
    target_ids = np.sort(items["itemID"].to_numpy()[is_target])
    source_ids = np.sort(items["itemID"].to_numpy()[~is_target])
    user_ids = np.sort(ratings["userID"].unique())
    uidx = {int(u): i for i, u in enumerate(user_ids)}

    def matrix(ids: np.ndarray) -> sp.csr_matrix:
        col = {int(v): j for j, v in enumerate(ids)}
        sub = ratings[ratings["itemID"].isin(col)]
        mat = sp.csr_matrix(
            (np.ones(len(sub), dtype=np.float32),
             (sub["userID"].map(uidx).to_numpy(), sub["itemID"].map(col).to_numpy())),
            shape=(len(user_ids), len(ids)),
        )
        mat.data[:] = 1.0
        return mat

    target = matrix(target_ids)
    source = matrix(source_ids).toarray()
    full = InteractionData(
        interactions=target,
        item_features=movielens.genre_matrix(target_ids),
        user_features=source,
        meta={"dataset": "ml-cross-domain"},
    )
    cold = pick_cold_users(target, source, cold_fraction, min_per_domain, seed)
    train, test = hide_target_history(full, cold)
    return CrossDomainSplit(train, test, cold, source_ids, target_ids)


def default_models(fast: bool = False) -> dict[str, Callable[[], Recommender]]:
    """The compared models with hyperparameters chosen by :func:`tune` on validation cold users."""
    epochs = 15 if fast else 40
    return {
        "popularity": Popularity,
        "emcdr": lambda: EMCDR(target_dim=32, source_dim=64, ridge=10.0, scale_source=False),
        "hybrid": lambda: HybridTwoTower(
            dim=64, hidden=256, epochs=epochs, cold_prob=0.5, weight_decay=1e-4,
            scale_user_features=False, seed=0,
        ),
    }


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def evaluate_models(
    split: CrossDomainSplit, models: dict[str, Callable[[], Recommender]], k: int = 10
) -> dict[str, dict[str, Any]]:
    """Fit each model on ``split.train`` and evaluate it on the cold users."""
    out: dict[str, dict[str, Any]] = {}
    for name, make in models.items():
        t0 = time.perf_counter()
        model = make().fit(split.train)
        train_s = time.perf_counter() - t0
        res = evaluate(model, split.train, split.test, k=k, users=split.cold_users)
        res["train_s"] = train_s
        out[name] = res
        _log(f"[ml-cross-domain] {name}: ndcg@{k}={res[f'ndcg@{k}']:.4f} ({train_s:.1f}s)")
    return out


def run(fast: bool = False, seed: int = 42) -> dict[str, Any]:
    """The benchmark entry: ``{"models": {name: metrics}, "n_cold_users": ..., ...}``."""
    split = ml_cross_domain_split(seed=seed)
    results = evaluate_models(split, default_models(fast=fast))
    return {
        "models": results,
        "n_cold_users": int(len(split.cold_users)),
        "n_source_items": int(len(split.source_item_ids)),
        "n_target_items": int(len(split.target_item_ids)),
        "target_genres": sorted(TARGET_GENRES),
    }
