"""Ridge map from user side features straight to target items: the plain cross-domain baseline.

``RidgeMap(ridge)`` L2-normalises each user's side-feature row (e.g. the multi-hot of the user's
source-domain ratings), appends a constant, and fits one closed-form ridge regression from that row to
the user's binary target-domain row, over the users that have target history:
``W = (F^T F + ridge I)^-1 F^T Y``. A user is scored ``[f_u / ||f_u||, 1] W`` whatever the history, so
cold users (features only) and warm users are scored alike. It is the hybrid's wide part on its own,
which makes it the reference that tells how much the two-tower network adds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender


def l2_rows(features: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (all-zero rows stay zero)."""
    f = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    return np.divide(f, norms, out=np.zeros_like(f), where=norms > 1e-12)


def fit_ridge_map(features: np.ndarray, interactions: sp.spmatrix, ridge: float) -> np.ndarray:
    """Closed-form ridge ``[features, 1] -> binary target row`` over users with target history.

    Returns the ``(e + 1, n_items)`` weights, the last row being the intercept (penalised like the rest).
    """
    if not ridge > 0:
        raise ValueError(f"ridge must be positive, got {ridge!r}")
    x = sp.csr_matrix(interactions, dtype=np.float64, copy=True)
    x.eliminate_zeros()
    warm = np.flatnonzero(np.diff(x.indptr) > 0)
    if warm.size == 0:
        raise ValueError("the ridge map needs at least one user with target-domain history")
    f = np.hstack([np.asarray(features, dtype=np.float64)[warm], np.ones((warm.size, 1))])
    y = x[warm]
    y.data[:] = 1.0
    gram = f.T @ f
    gram[np.diag_indices_from(gram)] += ridge
    return np.linalg.solve(gram, np.asarray((y.T @ f).T))


class RidgeMap(Recommender):
    """``RidgeMap(ridge=10.0)``: L2-normalised user features -> target items by closed-form ridge."""

    name: ClassVar[str] = "ridge_map"
    uses_features: ClassVar[bool] = True
    state_fields: ClassVar[tuple[str, ...]] = ("weights",)

    def __init__(self, ridge: float = 10.0) -> None:
        if not ridge > 0:
            raise ValueError(f"ridge must be positive, got {ridge!r}")
        self.ridge = float(ridge)
        self.weights: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {"ridge": self.ridge}

    def fit(self, data: InteractionData) -> RidgeMap:
        if data.user_features is None:
            raise ValueError("RidgeMap needs data.user_features (e.g. each user's source-domain profile)")
        uf = np.asarray(data.user_features)
        if uf.ndim != 2 or uf.shape[0] != data.n_users:
            raise ValueError(f"user_features must have shape ({data.n_users}, e), got {uf.shape}")
        self.weights = fit_ridge_map(l2_rows(uf), data.interactions, self.ridge).astype(np.float32)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.weights is not None and features is not None
        feats = l2_rows(features)
        return np.asarray(feats @ self.weights[:-1] + self.weights[-1], dtype=np.float32)
