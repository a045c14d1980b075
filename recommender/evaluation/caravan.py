"""Caravan (CoIL 2000): the ISLP propensity lab, and leave-one-product-out recommendation.

(a) Propensity, exactly as the ISLP lab (chapter 4): standardise all 85 predictors (``StandardScaler``
fitted on the whole table, as the lab does), ``train_test_split(test_size=1000, random_state=0)``,
``LogisticRegression(C=1e10, solver="liblinear")``; at a 0.25 cut-off the lab reports 29 predicted
buyers of whom 9 buy (31% precision against a 6% base rate).

(b) Recommendation: one owned product (of the 21) is hidden per customer; models rank the 21 products
from the customer's other products plus the 43 socio-demographic ``M*`` features. 2,359 of the 5,181
evaluated customers own a single product, so after hiding it they are *cold*: no product left, only the
demographics. Item-kNN and EASE score such a customer all zeros (their ranking would be column order),
so they run inside :class:`~recommender.models.fallback.ColdStartFallback`, which hands exactly those
customers to popularity. The figures are reported overall and separately for the cold and the *warm*
(at least one product left) customers.

Hyperparameters (EASE's lambda from :data:`EASE_GRID`, item-kNN's neighbourhood from :data:`KNN_GRID`,
the hybrid's from :data:`HYBRID_GRID`) are picked on an inner leave-one-product-out split of the
*training* data: one more owned product is hidden per customer who still has one, and the models are
scored on those hidden products; the test products are never looked at. The grids are hand-set: lambda
spans 1 to 1000 (the Gram matrix of 21 products has diagonal entries from a handful to thousands of
owners), k runs up to 20, every other product. The EMCDR-style baseline is left out here: its PureSVD
fold-in for customers with history collapses on a 21-product catalogue (nDCG@10 0.05 for them), so it
is no meaningful reference on this data.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from recommender.data.caravan import LeaveOneOut, caravan_products, leave_one_product_out, load_caravan
from recommender.evaluation import ModelFactory, log
from recommender.evaluator import evaluate
from recommender.models.base import InteractionData
from recommender.models.ease import EASE
from recommender.models.fallback import ColdStartFallback
from recommender.models.hybrid import HybridTwoTower
from recommender.models.itemknn import ItemKNN
from recommender.models.popularity import Popularity

ISLP_ANCHOR = {"predicted_buyers": 29, "true_buyers": 9, "precision": 9 / 29}


def islp_propensity(cutoff: float = 0.25) -> dict[str, Any]:
    """Reproduce the ISLP logistic-regression lab; returns the confusion counts at ``cutoff``."""
    frame = load_caravan()
    y = frame["Purchase"].to_numpy()
    features = frame.drop(columns=["Purchase"])
    scaled = StandardScaler(with_mean=True, with_std=True, copy=True).fit_transform(features)
    x_train, x_test, y_train, y_test = train_test_split(scaled, y, test_size=1000, random_state=0)
    model = LogisticRegression(C=1e10, solver="liblinear").fit(x_train, y_train)
    yes = list(model.classes_).index("Yes")
    prob = model.predict_proba(x_test)[:, yes]
    predicted = prob > cutoff
    true_pos = int(np.sum(predicted & (y_test == "Yes")))
    n_pred = int(predicted.sum())
    return {
        "cutoff": cutoff,
        "predicted_buyers": n_pred,
        "true_buyers": true_pos,
        "precision": true_pos / n_pred if n_pred else 0.0,
        "base_rate": float(np.mean(y_test == "Yes")),
        "test_size": len(y_test),
        "anchor": ISLP_ANCHOR,
        "matches_anchor": n_pred == ISLP_ANCHOR["predicted_buyers"]
        and true_pos == ISLP_ANCHOR["true_buyers"],
    }


HYBRID_GRID: tuple[dict[str, Any], ...] = (
    {"epochs": 20, "cold_prob": 0.2},
    {"epochs": 40, "cold_prob": 0.2},
    {"epochs": 60, "cold_prob": 0.2},
    {"epochs": 40, "cold_prob": 0.5},
)
EASE_GRID: tuple[float, ...] = (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
KNN_GRID: tuple[int, ...] = (3, 5, 10, 20)
SEGMENT_KEYS: tuple[str, ...] = ("ndcg@10", "map", "precision@10", "recall@10", "hr@10")


def _hybrid(cfg: dict[str, Any]) -> ModelFactory:
    def make() -> HybridTwoTower:
        return HybridTwoTower(dim=16, hidden=32, batch_size=256, targets="held_out", seed=0, **cfg)

    return make


def inner_split(train_data: InteractionData) -> LeaveOneOut:
    """Hide one more owned product per training customer who still has one (the tuning split)."""
    if train_data.user_features is None:
        raise ValueError("the Caravan split needs user_features (the demographics)")
    return leave_one_product_out(train_data.interactions, train_data.user_features, seed=1)


def _inner_ndcg(make: ModelFactory, inner: LeaveOneOut) -> float:
    model = make().fit(inner.train)
    return float(evaluate(model, inner.train, inner.test, users=inner.users, compute_auc=False)["ndcg@10"])


def tune_hybrid(
    train_data: InteractionData,
    grid: tuple[dict[str, Any], ...] = HYBRID_GRID,
    inner: LeaveOneOut | None = None,
) -> dict[str, Any]:
    """Pick the hybrid's settings by hiding one more product per customer inside the training data."""
    inner = inner_split(train_data) if inner is None else inner
    scores = [_inner_ndcg(_hybrid(cfg), inner) for cfg in grid]
    return dict(grid[int(np.argmax(scores))])


def tune_cf(
    train_data: InteractionData,
    ease_grid: tuple[float, ...] = EASE_GRID,
    knn_grid: tuple[int, ...] = KNN_GRID,
    inner: LeaveOneOut | None = None,
) -> dict[str, Any]:
    """EASE's lambda and item-kNN's k (both with the popularity fallback) on the inner split."""
    inner = inner_split(train_data) if inner is None else inner
    ease = [_inner_ndcg(lambda lam=lam: ColdStartFallback(EASE(lam=lam)), inner) for lam in ease_grid]  # type: ignore[misc]
    knn = [_inner_ndcg(lambda k=k: ColdStartFallback(ItemKNN(k=k)), inner) for k in knn_grid]  # type: ignore[misc]
    return {
        "ease_lam": float(ease_grid[int(np.argmax(ease))]),
        "itemknn_k": int(knn_grid[int(np.argmax(knn))]),
        "validation_ndcg@10": {"ease": float(max(ease)), "itemknn": float(max(knn))},
    }


def run(fast: bool = False) -> dict[str, Any]:
    """Propensity figures and the leave-one-product-out comparison, overall and for cold/warm customers."""
    t0 = time.perf_counter()
    propensity = islp_propensity()
    log(
        f"[caravan] ISLP propensity: {propensity['predicted_buyers']} predicted, "
        f"{propensity['true_buyers']} true, precision {propensity['precision']:.3f}"
    )
    products = caravan_products()
    loo = leave_one_product_out(products.ownership, products.demographics, seed=0)
    inner = inner_split(loo.train)
    if fast:
        cfg = {"epochs": 10, "cold_prob": 0.2}
        cf = tune_cf(loo.train, ease_grid=(30.0,), knn_grid=(20,), inner=inner)
    else:
        cfg = tune_hybrid(loo.train, inner=inner)
        cf = tune_cf(loo.train, inner=inner)
    log(f"[caravan] {len(loo.users)} customers with a hidden product; hybrid settings {cfg}; CF {cf}")
    ease_lam, knn_k = float(cf["ease_lam"]), int(cf["itemknn_k"])
    factories: dict[str, ModelFactory] = {
        "popularity": Popularity,
        "itemknn": lambda: ColdStartFallback(ItemKNN(k=knn_k)),
        "ease": lambda: ColdStartFallback(EASE(lam=ease_lam)),
        "hybrid": _hybrid(cfg),
    }
    has_products = np.diff(loo.train.interactions.indptr) > 0
    groups = {"cold": loo.users[~has_products[loo.users]], "warm": loo.users[has_products[loo.users]]}
    models: dict[str, dict[str, Any]] = {}
    segments: dict[str, dict[str, Any]] = {
        name: {"n_users": len(users), "models": {}} for name, users in groups.items()
    }
    for name, make in factories.items():
        t_fit = time.perf_counter()
        model = make().fit(loo.train)
        train_s = time.perf_counter() - t_fit
        models[name] = evaluate(model, loo.train, loo.test, users=loo.users)
        models[name]["train_s"] = train_s
        for seg, users in groups.items():
            res = evaluate(model, loo.train, loo.test, users=users, compute_auc=False)
            segments[seg]["models"][name] = {key: res[key] for key in SEGMENT_KEYS}
            models[name][f"ndcg@10_{seg}"] = res["ndcg@10"]
        log(
            f"  [caravan] {name}: ndcg@10={models[name]['ndcg@10']:.4f} "
            f"(cold {models[name]['ndcg@10_cold']:.4f}, warm {models[name]['ndcg@10_warm']:.4f}) "
            f"map={models[name]['map']:.4f} ({train_s:.1f}s)"
        )
    ndcg = {seg: {m: segments[seg]["models"][m]["ndcg@10"] for m in factories} for seg in groups}
    ndcg["all"] = {m: models[m]["ndcg@10"] for m in factories}
    return {
        "models": models,
        "segments": segments,
        "hybrid_beats_popularity": {seg: bool(v["hybrid"] > v["popularity"]) for seg, v in ndcg.items()},
        "propensity": propensity,
        "n_customers": int(products.ownership.shape[0]),
        "n_products": len(products.products),
        "n_evaluated": len(loo.users),
        "n_cold": len(groups["cold"]),
        "n_warm": len(groups["warm"]),
        "hybrid_settings": cfg,
        "cf_settings": cf,
        "seconds": time.perf_counter() - t0,
    }
