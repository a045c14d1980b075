"""Cold-start fallback: a history-based model for users with history, another model for users without.

``ColdStartFallback(model, fallback=Popularity())`` fits both models on the same data and uses the
fallback's scores for exactly the users whose history is empty, the model's scores for everyone else.
The two score scales are never mixed within a user, so no rescaling is needed: each user's ranking
comes from one model. The item-item models already answer an empty history with popularity; the wrapper
lets any other model (e.g. a content model that reads the profile) take those users instead.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender, empty_rows
from recommender.models.popularity import Popularity


class ColdStartFallback(Recommender):
    """``ColdStartFallback(model, fallback=None)``: ``fallback`` (default :class:`Popularity`) scores the
    users with an empty history, ``model`` the others."""

    name: ClassVar[str] = "cold_start_fallback"
    #: A history's values pass through to the members (each reads them or not).
    weighted_history: ClassVar[bool] = True

    def __init__(self, model: Recommender, fallback: Recommender | None = None) -> None:
        if not isinstance(model, Recommender):
            raise TypeError(f"model must be a Recommender, got {type(model).__name__}")
        if fallback is not None and not isinstance(fallback, Recommender):
            raise TypeError(f"fallback must be a Recommender, got {type(fallback).__name__}")
        self.model = model
        self.fallback: Recommender = fallback if fallback is not None else Popularity()

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return self.model.uses_features or self.fallback.uses_features

    def children(self) -> dict[str, Recommender]:
        return {"model": self.model, "fallback": self.fallback}

    def fit(self, data: InteractionData) -> ColdStartFallback:
        self.model.fit(data)
        self.fallback.fit(data)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        scores = np.array(self.model.score_history(history, features), dtype=np.float32)
        empty = empty_rows(history)
        if empty.any():
            feats = None if features is None else features[empty]
            scores[empty] = self.fallback.score_history(history[empty], feats)
        return scores
