"""The one small interface every recommender model implements.

A model is fitted on an :class:`InteractionData` (a users x items implicit-feedback matrix plus optional
content features for items and side features for users) and scores items for a batch of users.
Scores are dense ``float32`` arrays; higher is better. Ranking, exclusion of seen items and top-k
selection live here once, so every model behaves the same way in the evaluator and the behavioural tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class InteractionData:
    """Training or scoring input shared by every model.

    ``interactions``: CSR matrix (n_users, n_items) of implicit feedback in the *target* domain
    (e.g. product conversions, or MovieLens ratings binarised). Rows of cold-start users are empty.
    ``item_features``: optional dense (n_items, d) content features (e.g. LSA topics of the item text).
    ``user_features``: optional dense (n_users, e) side features (e.g. a learner's course-domain profile:
    topic interests and behaviour). This is what transfers knowledge to users with no target history.
    """

    interactions: sp.csr_matrix
    item_features: np.ndarray | None = None
    user_features: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.interactions.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.interactions.shape[1])


class Recommender(ABC):
    """Fit on :class:`InteractionData`, score items for users."""

    name: ClassVar[str] = "base"

    @abstractmethod
    def fit(self, data: InteractionData) -> Recommender:
        """Learn from ``data``; return ``self``."""

    @abstractmethod
    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        """Scores of shape (len(users), data.n_items) for the given user row indices of ``data``.

        ``data`` may differ from the training data in its interaction rows (e.g. a user's history at
        serving time) and user features, but has the same item set and feature dimensions.
        """

    def recommend(
        self, users: np.ndarray, data: InteractionData, k: int, exclude_seen: bool = True
    ) -> np.ndarray:
        """Top-``k`` item indices per user, best first, shape (len(users), k)."""
        users = np.asarray(users, dtype=np.int64)
        scores = np.asarray(self.score(users, data), dtype=np.float64).copy()
        if exclude_seen:
            seen = data.interactions[users]
            rows, cols = seen.nonzero()
            scores[rows, cols] = -np.inf
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        return np.take_along_axis(top, order, axis=1)
