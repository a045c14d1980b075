"""The one small interface every recommender model implements, the served one included.

A model is fitted on an :class:`InteractionData` (a users x items implicit-feedback matrix plus optional
content features for items and side features for users) and scores users **from a history**: a binary
(n, n_items) matrix of the items each user interacted with, plus the users' side features where the
model reads them (:meth:`Recommender.score_history`). A history may carry a value per item (a rating):
models that read it say so (``weighted_history``); every other model sees the binary pattern. A history
need not belong to a training user, so a learner who arrives after training, or a customer of a
held-out fold, is scored by the same call the service makes. :meth:`Recommender.score` is the
convenience form over rows of an ``InteractionData``.

Scores are dense ``float32`` arrays; higher is better. An empty history is a valid input: every model
answers it with something better than column order (models that read features personalise it, the
item-item models fall back to the training popularity they keep).

Persistence is part of the interface so that any model can be saved, loaded and served
(:mod:`recommender.models.registry`, :mod:`recommender.serving`): ``get_params`` (the JSON constructor
arguments), ``children`` (models a composite is built from), ``get_state`` / ``set_state`` (the fitted
numpy arrays). Nothing is pickled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

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
    #: Optional explicit value of each interaction (e.g. its rating), same shape and entries as
    #: ``interactions``; read by the models with ``weighted_history``.
    values: sp.csr_matrix | None = None
    #: Optional time of each interaction (e.g. unix seconds), same shape and entries as ``interactions``.
    times: sp.csr_matrix | None = None

    @property
    def n_users(self) -> int:
        return int(self.interactions.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.interactions.shape[1])

    def histories(self, users: np.ndarray | None = None) -> sp.csr_matrix:
        """The history rows of ``users`` (default: all): ``values`` where known, else ``interactions``."""
        mat = self.interactions if self.values is None else self.values
        return sp.csr_matrix(mat if users is None else mat[users])


def as_history(history: Any, n_items: int, binary: bool = True) -> sp.csr_matrix:
    """A float32 CSR history of width ``n_items`` from a sparse matrix, a dense (n, n_items) or
    (n_items,) array, or a sequence of item-index lists (one list per user); binary unless ``binary`` is
    false, which keeps the values (e.g. ratings) of a matrix history."""
    if sp.issparse(history):
        mat = sp.csr_matrix(history, dtype=np.float32, copy=True)
    elif isinstance(history, Sequence) and (len(history) == 0 or not np.isscalar(history[0])):
        rows = [np.asarray(list(h), dtype=np.int64) for h in history]
        for r in rows:
            if r.size and (r.min() < 0 or r.max() >= n_items):
                raise ValueError(f"history holds item indices outside 0..{n_items - 1}: {r.tolist()}")
        indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
        indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        mat = sp.csr_matrix(
            (np.ones(indices.size, dtype=np.float32), indices, indptr), shape=(len(rows), n_items)
        )
        mat.sum_duplicates()
    else:
        arr = np.asarray(history, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise ValueError(f"history must be 2-D (users x items), got shape {arr.shape}")
        mat = sp.csr_matrix(arr)
    if mat.shape[1] != n_items:
        raise ValueError(f"history has {mat.shape[1]} item columns, the model knows {n_items} items")
    if binary:
        mat.data = (mat.data != 0).astype(np.float32)
    elif not np.isfinite(mat.data).all():
        raise ValueError("history contains NaN or infinite values")
    mat.eliminate_zeros()
    return mat


def empty_rows(history: sp.csr_matrix) -> np.ndarray:
    """Boolean mask of the users whose history holds no item."""
    return np.diff(history.indptr) == 0


class Recommender(ABC):
    """Fit on :class:`InteractionData`; score users from a history (and features where used)."""

    name: ClassVar[str] = "base"
    #: Whether :meth:`score_history` reads user side features (then they are required).
    uses_features: ClassVar[bool] = False
    #: Whether :meth:`score_history` reads the values of a history (e.g. ratings); if not, it sees 0/1.
    weighted_history: ClassVar[bool] = False
    #: Attributes holding the fitted numpy arrays, saved and restored by the default state methods.
    state_fields: ClassVar[tuple[str, ...]] = ()

    n_items: int | None = None
    n_features: int | None = None

    # ------------------------------------------------------------------ the contract
    @abstractmethod
    def fit(self, data: InteractionData) -> Self:
        """Learn from ``data``; return ``self``."""

    @abstractmethod
    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        """Scores (n, n_items) for a checked history (binary unless ``weighted_history``) and checked
        features (or ``None``)."""

    def score_history(self, history: Any, user_features: np.ndarray | None = None) -> np.ndarray:
        """Scores of shape (n, n_items) for ``n`` users given by their histories.

        ``history``: (n, n_items) sparse or dense matrix (binary, or valued, e.g. ratings), or one list
        of item indices per user.
        ``user_features``: (n, e) side features, required by models that read them (``uses_features``)
        and ignored by the others.
        """
        n_items = self._fitted_items()
        hist = as_history(history, n_items, binary=not self.weighted_history)
        feats = self._check_features(user_features, hist.shape[0]) if self.uses_features else None
        out = np.asarray(self._score(hist, feats), dtype=np.float32)
        if out.shape != (hist.shape[0], n_items):
            raise AssertionError(f"{type(self).__name__} scored shape {out.shape}")
        return out

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        """Scores of shape (len(users), data.n_items) for the given user rows of ``data``: their history
        row and, where the model reads them, their side features."""
        n_items = self._fitted_items()
        if data.n_items != n_items:
            raise ValueError(f"data has {data.n_items} items, the model was fitted on {n_items}")
        users = np.asarray(users, dtype=np.int64)
        feats = None
        if self.uses_features:
            if data.user_features is None:
                raise ValueError(f"{type(self).__name__} reads user_features but data.user_features is None")
            feats = np.asarray(data.user_features)[users]
        return self.score_history(data.histories(users), feats)

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

    # ------------------------------------------------------------------ shared checks
    def _fitted_items(self) -> int:
        if self.n_items is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted before scoring")
        return int(self.n_items)

    def _remember(self, data: InteractionData) -> None:
        """Record the catalogue size and feature width a fit saw (what scoring checks against)."""
        self.n_items = data.n_items
        self.n_features = None if data.user_features is None else int(np.asarray(data.user_features).shape[1])

    def _check_features(self, features: np.ndarray | None, n: int) -> np.ndarray:
        if features is None:
            raise ValueError(f"{type(self).__name__} reads user_features: pass them with the history")
        f = np.asarray(features, dtype=np.float32)
        if f.ndim == 1:
            f = f[None, :]
        if f.ndim != 2 or f.shape[0] != n:
            raise ValueError(f"user_features must have shape ({n}, e), got {np.asarray(features).shape}")
        if self.n_features is not None and f.shape[1] != self.n_features:
            raise ValueError(
                f"user_features has {f.shape[1]} columns, the model was fitted on {self.n_features}"
            )
        if not np.isfinite(f).all():
            raise ValueError("user_features contains NaN or infinite values")
        return f

    # ------------------------------------------------------------------ persistence
    def get_params(self) -> dict[str, Any]:
        """JSON constructor arguments (children excluded): ``type(self)(**params, **children)`` rebuilds
        an unfitted copy."""
        return {}

    def children(self) -> dict[str, Recommender]:
        """The models a composite is built from, by constructor argument (empty for plain models)."""
        return {}

    @classmethod
    def from_parts(cls, params: dict[str, Any], children: dict[str, Recommender]) -> Self:
        """An unfitted model from :meth:`get_params` and :meth:`children` (composites may override)."""
        return cls(**params, **children)

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted arrays of this model itself (children save their own)."""
        self._fitted_items()
        state = {"n_items": np.asarray([self.n_items], dtype=np.int64)}
        if self.n_features is not None:
            state["n_features"] = np.asarray([self.n_features], dtype=np.int64)
        for name in self.state_fields:
            value = getattr(self, name)
            if value is not None:
                state[name] = np.asarray(value)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`get_state`'s arrays (the model becomes fitted)."""
        self.n_items = int(state["n_items"][0])
        self.n_features = int(state["n_features"][0]) if "n_features" in state else None
        for name in self.state_fields:
            setattr(self, name, np.asarray(state[name]) if name in state else None)


def popularity_prior(interactions: sp.spmatrix) -> np.ndarray:
    """Share of training users per item (float32): the answer of the item-item models to an empty history."""
    x = sp.csr_matrix(interactions)
    x.eliminate_zeros()
    counts = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
    return (counts / max(x.shape[0], 1)).astype(np.float32)


def with_prior(scores: np.ndarray, history: sp.csr_matrix, prior: np.ndarray | None) -> np.ndarray:
    """``scores`` with the rows of empty histories replaced by the popularity ``prior``."""
    if prior is None:
        return scores
    empty = empty_rows(history)
    if empty.any():
        scores = np.array(scores, dtype=np.float32)
        scores[empty] = prior
    return scores
