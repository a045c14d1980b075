"""Cold-start fallback: a history-based model for users with history, another model for users without.

Item-item models (item-kNN, EASE and the other linear autoencoders) score a user from the items in the
user's history, so a user whose history row is empty gets all-zero scores and the ranking degenerates to
column order. ``ColdStartFallback(model, fallback=Popularity())`` fits both models on the same data and
uses the fallback's scores for exactly those users (rows of ``data.interactions`` with no nonzero entry),
the model's scores for everyone else. The two score scales are never mixed within a user, so no
rescaling is needed: each user's ranking comes from one model.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender
from recommender.models.popularity import Popularity


class ColdStartFallback(Recommender):
    """``ColdStartFallback(model, fallback=None)``: ``fallback`` (default :class:`Popularity`) scores the
    users with an empty history row, ``model`` the others."""

    name: ClassVar[str] = "cold_start_fallback"

    def __init__(self, model: Recommender, fallback: Recommender | None = None) -> None:
        if not isinstance(model, Recommender):
            raise TypeError(f"model must be a Recommender, got {type(model).__name__}")
        if fallback is not None and not isinstance(fallback, Recommender):
            raise TypeError(f"fallback must be a Recommender, got {type(fallback).__name__}")
        self.model = model
        self.fallback: Recommender = fallback if fallback is not None else Popularity()
        self._fitted = False

    def fit(self, data: InteractionData) -> ColdStartFallback:
        self.model.fit(data)
        self.fallback.fit(data)
        self._fitted = True
        return self

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        if not self._fitted:
            raise RuntimeError("ColdStartFallback must be fitted before scoring")
        users = np.asarray(users, dtype=np.int64)
        scores = np.array(self.model.score(users, data), dtype=np.float32)
        rows = sp.csr_matrix(data.interactions[users])  # a copy: dropping stored zeros is safe
        rows.eliminate_zeros()
        empty = np.diff(rows.indptr) == 0
        if empty.any():
            scores[empty] = np.asarray(self.fallback.score(users[empty], data), dtype=np.float32)
        return scores
