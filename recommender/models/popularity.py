"""Most-popular baseline: every user gets the items most users interacted with.

It is the floor every personalised model must beat, and for users with no usable history (cold in the
target domain *and* without a course profile) it is a sensible answer in its own right.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender


class Popularity(Recommender):
    """Score = number of distinct training users who interacted with the item (same for all users)."""

    name: ClassVar[str] = "popularity"
    state_fields: ClassVar[tuple[str, ...]] = ("counts",)

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, data: InteractionData) -> Popularity:
        x = sp.csr_matrix(data.interactions)
        x.eliminate_zeros()
        self.counts = np.bincount(x.indices, minlength=data.n_items).astype(np.float32)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.counts is not None
        return np.broadcast_to(self.counts, (history.shape[0], len(self.counts))).copy()
