"""Weighted ensembles of recommenders with per-user z-scored scores, and the routed blend that is served.

Different models put their scores on unrelated scales (EASE weights, co-occurrence sums, logits), so each
member's scores are standardised per user over the items the user has *not* interacted with (the only
ones that can be recommended) before the weighted sum.

:class:`RoutedBlend` (registered as ``"hybrid"``: it is the served model, a hybrid of collaborative,
feature-based and neural members) adds routing: users with a history get one weight vector, users with
an empty history (cold start: only their side features are known) another. Both vectors are chosen on
validation data by :mod:`recommender.tuning`, so a member that does not help a route gets weight 0
there, and a blend can reduce to a single model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender, empty_rows
from recommender.models.ease import DLAE, UserDLAE


def zscore_unseen(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Per-row z-scores computed over the unseen entries; seen entries are set to the row minimum."""
    s = np.asarray(scores, dtype=np.float64)
    mask = ~seen
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    mean = np.where(mask, s, 0.0).sum(axis=1, keepdims=True) / counts
    var = np.where(mask, (s - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / counts
    std = np.sqrt(var)
    z = np.divide(s - mean, std, out=np.zeros_like(s), where=std > 1e-12)
    low = np.where(mask, z, np.inf).min(axis=1, keepdims=True)
    low = np.where(np.isfinite(low), low, 0.0)
    return np.where(mask, z, low)


class Ensemble(Recommender):
    """``Ensemble([(model, weight), ...])``: weighted sum of per-user z-scored member scores."""

    name: ClassVar[str] = "ensemble"
    #: A history's values pass through to the members (each reads them or not).
    weighted_history: ClassVar[bool] = True

    def __init__(self, members: Sequence[tuple[Recommender, float]]) -> None:
        if not members:
            raise ValueError("members must name at least one (model, weight) pair")
        for model, weight in members:
            if not isinstance(model, Recommender):
                raise TypeError(f"ensemble member {model!r} is not a Recommender")
            if not weight >= 0:
                raise ValueError(f"ensemble weights must be >= 0, got {weight!r}")
        if sum(w for _, w in members) <= 0:
            raise ValueError("ensemble weights must not all be zero")
        self.members = [(model, float(weight)) for model, weight in members]

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return any(m.uses_features for m, w in self.members if w > 0)

    def get_params(self) -> dict[str, Any]:
        return {"weights": [w for _, w in self.members]}

    def children(self) -> dict[str, Recommender]:
        return {str(i): model for i, (model, _) in enumerate(self.members)}

    @classmethod
    def from_parts(cls, params: dict[str, Any], children: dict[str, Recommender]) -> Ensemble:
        weights = list(params["weights"])
        return cls([(children[str(i)], float(w)) for i, w in enumerate(weights)])

    def fit(self, data: InteractionData) -> Ensemble:
        for model, _ in self.members:
            model.fit(data)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        seen = history.toarray() != 0
        total = np.zeros(seen.shape)
        for model, weight in self.members:
            if weight == 0:
                continue
            total += weight * zscore_unseen(model.score_history(history, features), seen)
        return total.astype(np.float32)


def two_sided_lae(
    item: tuple[float, float, float] = (200.0, 0.75, 0.25),
    user: tuple[float, float, float] = (200.0, 0.67, 0.25),
    user_weight: float = 0.25,
) -> Ensemble:
    """Item-side :class:`DLAE` blended with the user-side :class:`UserDLAE`.

    ``item`` and ``user`` are ``(lam, dropout, alpha)``; ``user_weight`` is the user side's share.
    """
    if not 0.0 <= user_weight <= 1.0:
        raise ValueError(f"user_weight must be in [0, 1], got {user_weight!r}")
    return Ensemble([(DLAE(*item), 1.0 - user_weight), (UserDLAE(*user), user_weight)])


def _check_weights(
    weights: Mapping[str, float], members: Mapping[str, Recommender], route: str
) -> dict[str, float]:
    unknown = sorted(set(weights) - set(members))
    if unknown:
        raise ValueError(f"{route}_weights name models that are not members: {unknown}")
    out = {name: float(weights.get(name, 0.0)) for name in members}
    if any(not w >= 0 for w in out.values()):
        raise ValueError(f"{route}_weights must be >= 0, got {dict(weights)}")
    if sum(out.values()) <= 0:
        raise ValueError(f"{route}_weights must not all be zero")
    return out


class RoutedBlend(Recommender):
    """``RoutedBlend(members, warm_weights, cold_weights=None)``: per-user z-scored member scores summed
    with ``warm_weights`` for users with a history and ``cold_weights`` (default: the warm ones) for users
    whose history is empty. ``members`` maps a name to a model; weights map names to shares >= 0."""

    name: ClassVar[str] = "hybrid"
    #: A history's values pass through to the members (each reads them or not).
    weighted_history: ClassVar[bool] = True

    def __init__(
        self,
        members: Mapping[str, Recommender],
        warm_weights: Mapping[str, float],
        cold_weights: Mapping[str, float] | None = None,
    ) -> None:
        if not members:
            raise ValueError("members must name at least one model")
        for key, model in members.items():
            if not isinstance(model, Recommender):
                raise TypeError(f"member {key!r} is not a Recommender")
        self.members = dict(members)
        self.warm_weights = _check_weights(warm_weights, self.members, "warm")
        self.cold_weights = _check_weights(
            warm_weights if cold_weights is None else cold_weights, self.members, "cold"
        )

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return any(
            m.uses_features for k, m in self.members.items() if self.warm_weights[k] or self.cold_weights[k]
        )

    def get_params(self) -> dict[str, Any]:
        return {"warm_weights": dict(self.warm_weights), "cold_weights": dict(self.cold_weights)}

    def children(self) -> dict[str, Recommender]:
        return dict(self.members)

    @classmethod
    def from_parts(cls, params: dict[str, Any], children: dict[str, Recommender]) -> RoutedBlend:
        return cls(children, params["warm_weights"], params.get("cold_weights"))

    @classmethod
    def from_fitted(
        cls,
        members: Mapping[str, Recommender],
        warm_weights: Mapping[str, float],
        cold_weights: Mapping[str, float] | None = None,
    ) -> RoutedBlend:
        """A blend of already fitted members (no refit); members without weight on any route are left out."""
        cold = warm_weights if cold_weights is None else cold_weights
        used = {k: m for k, m in members.items() if warm_weights.get(k, 0.0) or cold.get(k, 0.0)}
        blend = cls(used, {k: warm_weights.get(k, 0.0) for k in used}, {k: cold.get(k, 0.0) for k in used})
        sizes = {m.n_items for m in used.values()}
        if None in sizes or len(sizes) != 1:
            raise ValueError("from_fitted needs members fitted on the same catalogue")
        blend.n_items = sizes.pop()
        widths = {m.n_features for m in used.values() if m.uses_features}
        if len(widths) > 1:
            raise ValueError(f"members read user features of different widths: {sorted(map(str, widths))}")
        blend.n_features = widths.pop() if widths else None
        return blend

    def fit(self, data: InteractionData) -> RoutedBlend:
        for key, model in self.members.items():
            if self.warm_weights[key] or self.cold_weights[key]:
                model.fit(data)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        seen = history.toarray() != 0
        cold = empty_rows(history)
        total = np.zeros(seen.shape)
        for key, model in self.members.items():
            w = np.where(cold, self.cold_weights[key], self.warm_weights[key])
            if not w.any():
                continue
            feats = features if model.uses_features else None
            total += w[:, None] * zscore_unseen(model.score_history(history, feats), seen)
        return total.astype(np.float32)
