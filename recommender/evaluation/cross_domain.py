"""ml-cross-domain: transfer from one group of MovieLens genres to a disjoint group, for cold users.

The stand-in for KnowLedger's course -> product transfer, on real behaviour. Every movie belongs to
exactly one domain: the *target* domain holds the movies with at least one genre in
:data:`TARGET_GENRES` (action, thrillers, sci-fi, crime, ...), the *source* domain the rest (drama,
comedy, romance, children's, ...). Users rate in both, so they overlap. A random ``cold_fraction`` of
the users with at least ``min_per_domain`` ratings in each domain have their whole target history
hidden: for them the models see only the source behaviour (``user_features``: the multi-hot of their
source-domain ratings) and must rank target movies, exactly like a learner whose course history is
known but who never bought a financial product.

Models: target-domain popularity, EMCDR-style (SVD in both domains + ridge map), a plain ridge map from
the L2-normalised source ratings to the target items (:class:`~recommender.models.ridge_map.RidgeMap`,
which is the hybrid's wide part on its own), the hybrid (two-tower + that closed-form wide part) and, as
an ablation, the two-tower alone (``hybrid_deep_only``).

Protocol: five folds whose cold users partition the eligible users (every one is cold exactly once).
Tuning is nested: inside each fold, validation cold users are drawn from *that fold's* training users
only (the fold's own cold users have no target history and are never eligible), the hyperparameters of
EMCDR, the ridge map and the hybrid's wide part are picked on them, and the models are then refitted on
the fold's training data and scored on its cold users. No fold's test users influence its settings.
``models`` holds the mean over the folds; ``cv`` the per-fold figures.
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
from recommender.models.ridge_map import RidgeMap

#: A movie with any of these genres belongs to the target domain; every other movie to the source.
TARGET_GENRES: frozenset[str] = frozenset(
    {
        "Action",
        "Adventure",
        "Sci-Fi",
        "Thriller",
        "Crime",
        "Horror",
        "War",
        "Western",
        "Mystery",
        "Film-Noir",
        "Fantasy",
    }
)


@dataclass(frozen=True)
class CrossDomainSplit:
    """Target-domain training data (cold rows empty), held-out target rows and the cold user indices."""

    train: InteractionData
    test: sp.csr_matrix
    cold_users: np.ndarray
    source_item_ids: np.ndarray
    target_item_ids: np.ndarray


def hide_target_history(data: InteractionData, users: np.ndarray) -> tuple[InteractionData, sp.csr_matrix]:
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
    n_pick = max(1, round(fraction * len(eligible)))
    return np.sort(rng.choice(eligible, size=n_pick, replace=False))


def ml_cross_domain_split(
    cold_fraction: float = 0.2, min_per_domain: int = 5, seed: int = 42
) -> CrossDomainSplit:
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
            (
                np.ones(len(sub), dtype=np.float32),
                (sub["userID"].map(uidx).to_numpy(), sub["itemID"].map(col).to_numpy()),
            ),
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


DEEP: dict[str, Any] = {
    "dim": 64,
    "hidden": 128,
    "epochs": 60,
    "cold_prob": 0.5,
    "feature_dropout": 0.5,
    "user_feature_scaling": "l2",
}
EMCDR_GRID: tuple[dict[str, Any], ...] = tuple(
    {"target_dim": t, "source_dim": 32, "ridge": r, "scale_source": False}
    for t in (16, 32, 64)
    for r in (1.0, 10.0)
)
WIDE_GRID: tuple[dict[str, Any], ...] = tuple(
    {"wide_ridge": r, "wide_weight": w} for r in (3.0, 10.0) for w in (0.25, 0.5, 0.75)
)
RIDGE_GRID: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
MODELS: tuple[str, ...] = ("popularity", "emcdr", "ridge_map", "hybrid", "hybrid_deep_only")
_MEAN_KEYS: tuple[str, ...] = ("ndcg@10", "map", "precision@10", "recall@10", "hr@10", "auc", "train_s")


def hybrid_factory(wide: dict[str, Any] | None, fast: bool = False) -> Callable[[], HybridTwoTower]:
    """The hybrid for this protocol; ``wide=None`` is the deep two-tower alone (the ablation)."""
    deep = {**DEEP, "epochs": 10} if fast else DEEP

    def make() -> HybridTwoTower:
        return HybridTwoTower(seed=0, **deep, **(wide or {}))

    return make


def tune(split: CrossDomainSplit, fast: bool = False, seed: int = 1) -> dict[str, Any]:
    """EMCDR, ridge-map and wide-part settings picked on validation cold users carved out of
    ``split``'s training users (its own cold users have empty target rows and are never drawn).

    The hybrid's towers do not depend on the wide settings, so they are trained once on the validation
    data and every wide setting is scored on them (:meth:`HybridTwoTower.with_wide`).
    """
    if split.train.user_features is None:
        raise ValueError("the cross-domain split needs user_features (the source-domain profiles)")
    val_cold = pick_cold_users(split.train.interactions, split.train.user_features, 0.2, 5, seed=seed)
    if np.intersect1d(val_cold, split.cold_users).size:
        raise AssertionError("validation users must come from the fold's training users")
    vtrain, vtest = hide_target_history(split.train, val_cold)

    def val(model: Recommender) -> float:
        return float(evaluate(model, vtrain, vtest, users=val_cold, compute_auc=False)["ndcg@10"])

    emcdr_grid = EMCDR_GRID[2:3] if fast else EMCDR_GRID
    wide_grid = WIDE_GRID[1:2] if fast else WIDE_GRID
    ridge_grid = RIDGE_GRID[2:3] if fast else RIDGE_GRID
    emcdr_scores = [val(EMCDR(**c).fit(vtrain)) for c in emcdr_grid]
    ridge_scores = [val(RidgeMap(ridge=r).fit(vtrain)) for r in ridge_grid]
    towers = hybrid_factory(None, fast)().fit(vtrain)
    wide_scores = [val(towers.with_wide(vtrain, **c)) for c in wide_grid]
    return {
        "emcdr": dict(emcdr_grid[int(np.argmax(emcdr_scores))]),
        "ridge_map": {"ridge": ridge_grid[int(np.argmax(ridge_scores))]},
        "hybrid": dict(wide_grid[int(np.argmax(wide_scores))]),
        "validation_ndcg@10": {
            "emcdr": float(max(emcdr_scores)),
            "ridge_map": float(max(ridge_scores)),
            "hybrid": float(max(wide_scores)),
        },
        "n_validation_users": len(val_cold),
    }


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _score(
    split: CrossDomainSplit, name: str, model: Recommender, train_s: float, k: int, label: str
) -> dict[str, Any]:
    res = evaluate(model, split.train, split.test, k=k, users=split.cold_users)
    res["train_s"] = train_s
    _log(f"[ml-cross-domain{label}] {name}: ndcg@{k}={res[f'ndcg@{k}']:.4f} ({train_s:.1f}s)")
    return res


def evaluate_models(
    split: CrossDomainSplit, models: dict[str, Callable[[], Recommender]], k: int = 10, label: str = ""
) -> dict[str, dict[str, Any]]:
    """Fit each model on ``split.train`` and evaluate it on the cold users."""
    out: dict[str, dict[str, Any]] = {}
    for name, make in models.items():
        t0 = time.perf_counter()
        model = make().fit(split.train)
        out[name] = _score(split, name, model, time.perf_counter() - t0, k, label)
    return out


def evaluate_fold(
    split: CrossDomainSplit, tuned: dict[str, Any], fast: bool = False, k: int = 10, label: str = ""
) -> dict[str, dict[str, Any]]:
    """Every model of the protocol with the fold's own settings, fitted on its training data.

    ``hybrid`` and ``hybrid_deep_only`` share one training run of the towers (identical settings).
    """
    out = evaluate_models(
        split,
        {
            "popularity": Popularity,
            "emcdr": lambda: EMCDR(**tuned["emcdr"]),
            "ridge_map": lambda: RidgeMap(**tuned["ridge_map"]),
        },
        k=k,
        label=label,
    )
    t0 = time.perf_counter()
    towers = hybrid_factory(None, fast)().fit(split.train)
    towers_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hybrid = towers.with_wide(split.train, **tuned["hybrid"])
    out["hybrid"] = _score(split, "hybrid", hybrid, towers_s + time.perf_counter() - t0, k, label)
    out["hybrid_deep_only"] = _score(split, "hybrid_deep_only", towers, towers_s, k, label)
    return out


def cold_user_folds(n_folds: int = 5, min_per_domain: int = 5, seed: int = 42) -> list[CrossDomainSplit]:
    """``n_folds`` splits whose cold users partition the eligible users (every one is cold once)."""
    base = ml_cross_domain_split(min_per_domain=min_per_domain, seed=seed)
    full_x = sp.csr_matrix(base.train.interactions + base.test)
    full = InteractionData(full_x, base.train.item_features, base.train.user_features, dict(base.train.meta))
    n_target = np.diff(full_x.indptr)
    n_source = (np.asarray(full.user_features) != 0).sum(axis=1)
    eligible = np.flatnonzero((n_target >= min_per_domain) & (n_source >= min_per_domain))
    order = np.random.default_rng(seed).permutation(eligible)
    splits = []
    for fold in np.array_split(order, n_folds):
        cold = np.sort(fold)
        train, test = hide_target_history(full, cold)
        splits.append(CrossDomainSplit(train, test, cold, base.source_item_ids, base.target_item_ids))
    return splits


def run(fast: bool = False, n_folds: int = 5) -> dict[str, Any]:
    """Nested cross-validation over the cold-user folds: ``{"models": mean over folds, "cv": ...}``."""
    t0 = time.perf_counter()
    folds = cold_user_folds(n_folds=2 if fast else n_folds)
    per_fold: list[dict[str, dict[str, Any]]] = []
    tuning: list[dict[str, Any]] = []
    for i, split in enumerate(folds):
        tuned = tune(split, fast=fast)
        _log(f"[ml-cross-domain fold {i}] validation picked {tuned}")
        tuning.append(tuned)
        per_fold.append(evaluate_fold(split, tuned, fast=fast, label=f" fold {i}"))
    ndcg = {name: [fold[name]["ndcg@10"] for fold in per_fold] for name in MODELS}
    mean = {
        name: {
            key: float(np.mean([fold[name][key] for fold in per_fold]))
            for key in _MEAN_KEYS
            if all(key in fold[name] for fold in per_fold)
        }
        for name in MODELS
    }
    for name in MODELS:
        mean[name]["ndcg@10_std"] = float(np.std(ndcg[name]))
        mean[name]["n_users"] = int(sum(fold[name]["n_users"] for fold in per_fold))
    hybrid_mean = mean["hybrid"]["ndcg@10"]
    return {
        "models": mean,
        "cv": {
            "n_folds": len(folds),
            "nested_tuning": True,
            "mean": mean,
            "ndcg@10_per_fold": ndcg,
            "per_fold": per_fold,
            "hybrid_beats_popularity_and_emcdr_in_mean": bool(
                hybrid_mean > mean["popularity"]["ndcg@10"] and hybrid_mean > mean["emcdr"]["ndcg@10"]
            ),
            "hybrid_beats_ridge_map_in_mean": bool(hybrid_mean > mean["ridge_map"]["ndcg@10"]),
            "hybrid_beats_baselines_every_fold": bool(
                all(
                    h > max(e, p)
                    for h, e, p in zip(ndcg["hybrid"], ndcg["emcdr"], ndcg["popularity"], strict=True)
                )
            ),
        },
        "tuning": tuning,
        "n_cold_users_per_fold": [len(split.cold_users) for split in folds],
        "n_source_items": len(folds[0].source_item_ids),
        "n_target_items": len(folds[0].target_item_ids),
        "target_genres": sorted(TARGET_GENRES),
        "seconds": time.perf_counter() - t0,
    }
