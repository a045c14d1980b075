"""Content-based scoring in the item-feature (topic) space: the cross-domain bridge for cold-start users.

A user's vector is the mean of the ``item_features`` of the items in their target-domain history. When
``user_features`` are given and their first ``item_features.shape[1]`` columns live in the same topic
space, that part (for KnowLedger: the course-derived topic-interest vector, which
:mod:`recommender.profiles` puts first) is added, each part L2-normalised so neither dominates by scale.
A learner who never bought a product but studied index funds therefore still gets high scores for
wealth products. Scores are cosine similarities between the user vector and each item's features.

Which user-feature columns are in the item space is a convention of the data: by default the leading
``d = item_features.shape[1]`` columns are taken as the topic part (the profile layout). Data whose user
features follow another layout says so in ``data.meta["user_topic_dim"]``: it must equal ``d``, or be
``0`` to declare that no user-feature columns are in the item space. User features narrower than ``d``
without a declaration cannot follow the layout and are ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender


def _l2_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 1e-12)


class ContentCosine(Recommender):
    """``ContentCosine(use_user_features=None, user_weight=1.0)``: cosine between user and item features.

    ``use_user_features``: ``None`` = use the leading ``d`` user-feature columns unless
    ``data.meta["user_topic_dim"]`` is 0 (it must equal ``d`` otherwise); ``True`` = always use them;
    ``False`` = history only. ``user_weight`` scales the profile part relative to the (unit) history part.
    Which columns are read is decided at fit time from the training data and kept with the model.
    """

    name: ClassVar[str] = "content"
    state_fields: ClassVar[tuple[str, ...]] = ("item_vectors",)

    def __init__(self, use_user_features: bool | None = None, user_weight: float = 1.0) -> None:
        if user_weight < 0:
            raise ValueError(f"user_weight must be >= 0, got {user_weight}")
        self.use_user_features = use_user_features
        self.user_weight = float(user_weight)
        self.item_vectors: np.ndarray | None = None
        self.topic_dim = 0

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return self.topic_dim > 0

    def get_params(self) -> dict[str, Any]:
        return {"use_user_features": self.use_user_features, "user_weight": self.user_weight}

    def fit(self, data: InteractionData) -> ContentCosine:
        if data.item_features is None:
            raise ValueError("ContentCosine needs data.item_features (n_items, d)")
        feats = np.asarray(data.item_features, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[0] != data.n_items:
            raise ValueError(f"item_features must have shape ({data.n_items}, d), got {feats.shape}")
        self.item_vectors = _l2_rows(feats)
        self.topic_dim = self._resolve_topic_dim(data, feats.shape[1])
        self._remember(data)
        return self

    def _resolve_topic_dim(self, data: InteractionData, d: int) -> int:
        """How many leading user-feature columns are in the item topic space (0: none are read)."""
        if data.user_features is None or self.use_user_features is False:
            return 0
        uf = np.asarray(data.user_features)
        declared = data.meta.get("user_topic_dim")
        if self.use_user_features is None:
            if declared is not None and int(declared) == 0:
                return 0
            if declared is not None and int(declared) != d:
                raise ValueError(
                    f"data.meta['user_topic_dim']={declared} does not match item_features width {d}; "
                    "user features are not in the item topic space"
                )
            if declared is None and (uf.ndim != 2 or uf.shape[1] < d):
                return 0  # too narrow to follow the profile layout: nothing is in the item space
        if uf.ndim != 2 or uf.shape[1] < d:
            raise ValueError(f"user_features must have at least {d} columns (the topic part), got {uf.shape}")
        return d

    def user_vectors(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        """The (unnormalised) query vector per user: history mean (unit) + weighted profile part (unit)."""
        assert self.item_vectors is not None
        counts = np.diff(history.indptr).astype(np.float64)
        mean = np.asarray(history @ self.item_vectors) / np.maximum(counts, 1.0)[:, None]
        vec = _l2_rows(mean)
        if self.topic_dim and features is not None:
            vec = vec + self.user_weight * _l2_rows(
                np.asarray(features[:, : self.topic_dim], dtype=np.float64)
            )
        return vec

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        vec = _l2_rows(self.user_vectors(history, features))
        assert self.item_vectors is not None
        return np.asarray(vec @ self.item_vectors.T, dtype=np.float32)

    def get_state(self) -> dict[str, np.ndarray]:
        return {**super().get_state(), "topic_dim": np.asarray([self.topic_dim], dtype=np.int64)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        super().set_state(state)
        self.topic_dim = int(state["topic_dim"][0])
