"""Model selection on validation data carved out of the training data, for any :class:`InteractionData`.

Nothing here knows a data set. A *splitter* turns training data into validation folds, each a fit set
and a batch of validation queries (a history, side features, the held-out items to find); the grids are
arguments. The test data of a benchmark is never involved.

* :class:`HoldoutSplitter`: a share of the users with a history become validation users; some of them
  keep part of their history and must find the rest (*warm* queries), the others lose all of it and
  are scored from their features alone (*cold* queries, removed from the fit set);
* :class:`LeaveOneOutSplitter`: a share of the users is removed from the fit set; every item such a user
  holds becomes one query, with the user's other items as the history ("which product next").

:func:`grid_search` picks a model's settings; :func:`blend_weights` picks the weights of a
:class:`~recommender.models.ensemble.RoutedBlend` for warm and cold queries separately, from the
validation scores the members already produced.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from recommender.metrics import ranking_metrics_batch
from recommender.models.base import InteractionData, Recommender, empty_rows
from recommender.models.ensemble import zscore_unseen

ModelFactory = Callable[..., Recommender]


@dataclass(frozen=True)
class ValidationFold:
    """A fit set and the validation queries scored against it."""

    fit: InteractionData
    history: sp.csr_matrix
    features: np.ndarray | None
    target: sp.csr_matrix

    @property
    def cold(self) -> np.ndarray:
        """Queries with an empty history."""
        return empty_rows(self.history)


class Splitter(Protocol):
    """Turns training data into validation folds."""

    def folds(self, data: InteractionData) -> list[ValidationFold]: ...


def _binary(x: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(x, dtype=np.float32, copy=True)
    m.eliminate_zeros()
    m.data[:] = 1.0
    return m


def _restricted(m: sp.spmatrix | None, rows: np.ndarray, pattern: sp.csr_matrix) -> sp.csr_matrix | None:
    """The entries of ``m[rows]`` where ``pattern`` (already of those rows) is non-zero."""
    if m is None:
        return None
    out = sp.csr_matrix(sp.csr_matrix(m)[rows].multiply(pattern != 0), dtype=np.float64)
    out.eliminate_zeros()
    return out


def _subset(data: InteractionData, rows: np.ndarray, x: sp.csr_matrix | None = None) -> InteractionData:
    """Rows ``rows`` of ``data`` restricted to the entries of ``x`` (default: all), values and times kept."""
    inter = sp.csr_matrix((data.interactions if x is None else x)[rows])
    feats = None if data.user_features is None else np.asarray(data.user_features)[rows]
    values, times = (_restricted(m, rows, inter) for m in (data.values, data.times))
    return InteractionData(inter, data.item_features, feats, dict(data.meta), values, times)


def _histories(data: InteractionData, rows: np.ndarray, pattern: sp.csr_matrix) -> sp.csr_matrix:
    """Query histories: ``pattern`` (rows of ``rows``) with the data's values where it has them."""
    valued = _restricted(data.values, rows, pattern)
    return sp.csr_matrix(pattern if valued is None else valued, dtype=np.float32)


@dataclass(frozen=True)
class HoldoutSplitter:
    """``users`` of the users with at least ``min_items`` items are validation users; ``cold_share`` of
    them lose their whole history (cold queries), the others a random ``fraction`` of it (warm queries).
    ``n_folds`` independent draws, seeded from ``seed``."""

    fraction: float = 0.25
    users: float = 1.0
    cold_share: float = 0.0
    min_items: int = 2
    n_folds: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {self.fraction}")
        if not 0.0 < self.users <= 1.0:
            raise ValueError(f"users must be in (0, 1], got {self.users}")
        if not 0.0 <= self.cold_share <= 1.0:
            raise ValueError(f"cold_share must be in [0, 1], got {self.cold_share}")
        if self.n_folds < 1 or self.min_items < 1:
            raise ValueError(f"n_folds and min_items must be >= 1, got {self.n_folds}, {self.min_items}")

    def folds(self, data: InteractionData) -> list[ValidationFold]:
        x = _binary(data.interactions)
        counts = np.diff(x.indptr)
        eligible = np.flatnonzero(counts >= self.min_items)
        if eligible.size < 2:
            raise ValueError(f"validation needs users with >= {self.min_items} items; found {eligible.size}")
        out = []
        for f in range(self.n_folds):
            rng = np.random.default_rng(self.seed + f)
            chosen = rng.permutation(eligible)[: max(1, round(self.users * eligible.size))]
            n_cold = round(self.cold_share * chosen.size)
            cold, warm = np.sort(chosen[:n_cold]), np.sort(chosen[n_cold:])
            hide = sp.lil_matrix(x.shape, dtype=np.float32)
            for u in warm:
                items = x.indices[x.indptr[u] : x.indptr[u + 1]]
                n_hide = max(1, round(self.fraction * items.size))
                hide[u, rng.choice(items, size=n_hide, replace=False)] = 1.0
            hide_csr = sp.csr_matrix(hide)
            kept = _binary(x - hide_csr)
            keep_rows = np.setdiff1d(np.arange(x.shape[0]), cold)
            queries = np.concatenate([warm, cold])
            history = sp.vstack(
                [_histories(data, warm, kept[warm]), sp.csr_matrix((cold.size, x.shape[1]), dtype=np.float32)]
            )
            target = sp.vstack([hide_csr[warm], x[cold]])
            feats = None if data.user_features is None else np.asarray(data.user_features)[queries]
            out.append(
                ValidationFold(_subset(data, keep_rows, kept), sp.csr_matrix(history), feats, _binary(target))
            )
        return out


@dataclass(frozen=True)
class LeaveOneOutSplitter:
    """``users`` of the users with at least ``min_items`` items are removed from the fit set; each item
    they hold is hidden in turn and must be found from their other items (and features)."""

    users: float = 0.2
    min_items: int = 2
    n_folds: int = 1
    seed: int = 0

    def folds(self, data: InteractionData) -> list[ValidationFold]:
        if not 0.0 < self.users < 1.0:
            raise ValueError(f"users must be in (0, 1), got {self.users}")
        x = _binary(data.interactions)
        eligible = np.flatnonzero(np.diff(x.indptr) >= self.min_items)
        if eligible.size < 2:
            raise ValueError(f"validation needs users with >= {self.min_items} items; found {eligible.size}")
        out = []
        for f in range(self.n_folds):
            rng = np.random.default_rng(self.seed + f)
            chosen = np.sort(rng.permutation(eligible)[: max(1, round(self.users * eligible.size))])
            out.append(leave_one_out_queries(data, chosen))
        return out


def leave_one_out_queries(data: InteractionData, users: np.ndarray) -> ValidationFold:
    """``data`` without ``users`` as the fit set; every (user, held item) of ``users`` as a query."""
    x = _binary(data.interactions)
    rows, cols = x[users].nonzero()
    history = sp.csr_matrix(
        x[users[rows]]
        - sp.csr_matrix((np.ones(rows.size), (np.arange(rows.size), cols)), shape=(rows.size, x.shape[1]))
    )
    history.eliminate_zeros()
    target = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (np.arange(rows.size), cols)), shape=(rows.size, x.shape[1])
    )
    feats = None if data.user_features is None else np.asarray(data.user_features)[users[rows]]
    keep = np.setdiff1d(np.arange(x.shape[0]), users)
    return ValidationFold(_subset(data, keep), _histories(data, users[rows], _binary(history)), feats, target)


# ---------------------------------------------------------------------------------------------- metrics
def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; names: ndcg, hr, recall, precision, map."""
    name, _, k = metric.partition("@")
    if name not in ("ndcg", "hr", "recall", "precision", "map") or not k.isdigit() or int(k) < 1:
        raise ValueError(f"metric must look like 'ndcg@10' or 'hr@1', got {metric!r}")
    return name, int(k)


def per_query(scores: np.ndarray, history: sp.csr_matrix, target: sp.csr_matrix, metric: str) -> np.ndarray:
    """The metric per query, items of the history excluded from the ranking."""
    name, k = parse_metric(metric)
    s = np.array(scores, dtype=np.float64)
    r, c = history.nonzero()
    s[r, c] = -np.inf
    kk = min(k, s.shape[1])
    top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    return ranking_metrics_batch(top, target, k)[name]


def fold_scores(model: Recommender, fold: ValidationFold) -> np.ndarray:
    """A fitted model's scores for a fold's queries."""
    return model.score_history(fold.history, fold.features if model.uses_features else None)


@dataclass
class GridResult:
    """The best settings of one model family and what validation said about every setting tried."""

    params: dict[str, Any]
    value: float
    tried: list[tuple[dict[str, Any], float]]
    scores: list[np.ndarray] = field(repr=False)
    seconds: float = 0.0


def grid_search(
    make: ModelFactory, grid: Sequence[Mapping[str, Any]], folds: Sequence[ValidationFold], metric: str
) -> GridResult:
    """Fit ``make(**params)`` on every fold for each ``params`` of ``grid``; keep the best mean metric
    (the first of equals: list grids from the simplest setting up)."""
    if not grid:
        raise ValueError("the grid is empty")
    t0 = time.perf_counter()
    best: GridResult | None = None
    tried = []
    for params in grid:
        scores = [fold_scores(make(**params).fit(f.fit), f) for f in folds]
        value = float(
            np.mean(
                [per_query(s, f.history, f.target, metric).mean() for s, f in zip(scores, folds, strict=True)]
            )
        )
        tried.append((dict(params), value))
        if best is None or value > best.value:
            best = GridResult(dict(params), value, tried, scores)
    assert best is not None
    best.seconds = time.perf_counter() - t0
    return best


def simplex(n: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of ``n`` non-negative multiples of ``step`` that sum to 1."""
    units = round(1.0 / step)
    return [
        tuple(c / units for c in combo)
        for combo in itertools.product(range(units + 1), repeat=n)
        if sum(combo) == units
    ]


@dataclass
class BlendChoice:
    """Weights per route and the validation metric each reached (``None``: the route had no query)."""

    warm: dict[str, float]
    cold: dict[str, float]
    warm_value: float | None
    cold_value: float | None


def blend_weights(
    scores: Mapping[str, Sequence[np.ndarray]],
    folds: Sequence[ValidationFold],
    metric: str,
    step: float = 0.1,
    max_vectors: int = 300,
) -> BlendChoice:
    """The weights of a routed blend, per route (warm and cold queries), that maximise the mean
    validation metric of that route's queries over the simplex grid of ``step`` (coarsened to 0.25 when
    it would hold more than ``max_vectors`` vectors). Ties go to the earlier vector, which puts the
    weight on the later members last: list members from the preferred one. A route without queries
    copies the other route's weights."""
    names = list(scores)
    if not names:
        raise ValueError("no member scores to blend")
    vectors = simplex(len(names), step)
    if len(vectors) > max_vectors:
        vectors = simplex(len(names), 0.25)
    vectors.sort(key=lambda v: [-w for w in v])  # pure members first, the first member first
    z = [
        {name: zscore_unseen(scores[name][i], fold.history.toarray() != 0) for name in names}
        for i, fold in enumerate(folds)
    ]
    chosen: dict[str, tuple[dict[str, float], float]] = {}
    for route in ("warm", "cold"):
        masks = [fold.cold if route == "cold" else ~fold.cold for fold in folds]
        if not any(m.any() for m in masks):
            continue
        best_value, best_vec = -np.inf, vectors[0]
        for vec in vectors:
            vals = []
            for fold, zs, m in zip(folds, z, masks, strict=True):
                if m.any():
                    total = sum(w * zs[name][m] for name, w in zip(names, vec, strict=True) if w)
                    vals.append(per_query(np.asarray(total), fold.history[m], fold.target[m], metric).mean())
            value = float(np.mean(vals))
            if value > best_value + 1e-12:
                best_value, best_vec = value, vec
        chosen[route] = ({n: float(w) for n, w in zip(names, best_vec, strict=True)}, best_value)
    warm = chosen.get("warm", chosen.get("cold"))
    cold = chosen.get("cold", warm)
    assert warm is not None and cold is not None
    return BlendChoice(
        warm[0],
        cold[0],
        chosen["warm"][1] if "warm" in chosen else None,
        chosen["cold"][1] if "cold" in chosen else None,
    )
