"""Weighted ensembles of recommenders with per-user z-scored scores.

Different models put their scores on unrelated scales (EASE weights, co-occurrence sums, logits), so each
member's scores are standardised per user over the items the user has *not* interacted with (the only
ones that can be recommended) before the weighted sum. On MovieLens-100k the item-side and user-side
linear autoencoders make different errors, and their blend is the best model measured here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from recommender.models.base import InteractionData, Recommender
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
        self.members = list(members)

    def fit(self, data: InteractionData) -> Ensemble:
        for model, _ in self.members:
            model.fit(data)
        return self

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        seen = data.interactions[users].toarray() != 0
        total = np.zeros((len(users), data.n_items))
        for model, weight in self.members:
            if weight == 0:
                continue
            total += weight * zscore_unseen(model.score(users, data), seen)
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
