"""EASE: the closed-form shallow linear autoencoder of Steck (2019), and its dropout-regularised kin.

EASE learns an item-item weight matrix ``B`` with a zero diagonal minimising
``||X - XB||^2 + lam ||B||^2``; the solution is ``B = I - P / diag(P)`` with ``P = (X^T X + lam I)^-1``.
It has one hyperparameter and, on small dense catalogues such as MovieLens-100k, beats most neural
models, which makes it the reference every other model here is compared with.

``EDLAE`` (Steck 2020, "Autoencoders that don't overfit towards the identity") replaces the uniform L2
penalty by the one implied by dropout with probability ``p`` on the input: the diagonal penalty becomes
``lam + p/(1-p) * diag(X^T X)``, so popular items are shrunk harder. With the zero-diagonal
constraint it stays closed-form.

``DLAE`` is the same dropout-emphasised linear autoencoder without the zero-diagonal constraint
(``B = (G + Lambda)^-1 G``; the dropout penalty alone keeps it away from the identity), with one more
option: the Gram matrix is built from rows weighted by ``1/n_u^alpha`` so that heavy users (hundreds of
ratings) do not dominate the item-item statistics. ``UserDLAE`` is the user-user counterpart (a linear
autoencoder over users, columns weighted by item popularity); its prediction for a history ``x`` folds
into an item-item matrix ``K = D X^T (X D X^T + Lambda)^-1 X``, so it scores new users too. All of
these are cheap for catalogues up to a few tens of thousands of items (users, for ``UserDLAE``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender


def _gram(interactions: sp.csr_matrix) -> np.ndarray:
    x = sp.csr_matrix(interactions, dtype=np.float64)
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def _zero_diag_solution(gram: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """``B`` minimising ``||X - XB||^2 + sum_j penalty_j ||B_j||^2`` subject to ``diag(B) = 0``."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += penalty
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


class EASE(Recommender):
    """Closed-form EASE item-item model, ``EASE(lam=300.0)``."""

    name: ClassVar[str] = "ease"

    def __init__(self, lam: float = 300.0) -> None:
        if not lam > 0:
            raise ValueError(f"lam must be positive, got {lam!r}")
        self.lam = float(lam)
        self.weights: np.ndarray | None = None

    def _penalty(self, gram: np.ndarray) -> np.ndarray:
        return np.full(gram.shape[0], self.lam)

    def fit(self, data: InteractionData) -> EASE:
        gram = _gram(data.interactions)
        self.weights = _zero_diag_solution(gram, self._penalty(gram)).astype(np.float32)
        self._n_items = data.n_items
        return self

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted before scoring")
        if data.n_items != self.weights.shape[0]:
            raise ValueError(
                f"data has {data.n_items} items, the model was fitted on {self.weights.shape[0]}"
            )
        rows = data.interactions[np.asarray(users, dtype=np.int64)]
        return np.asarray(rows @ self.weights, dtype=np.float32)


class EDLAE(EASE):
    """EASE with the dropout-emphasised penalty ``lam + p/(1-p) * diag(X^T X)`` (closed form)."""

    name: ClassVar[str] = "edlae"

    def __init__(self, lam: float = 50.0, dropout: float = 0.25) -> None:
        super().__init__(lam=lam)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    def _penalty(self, gram: np.ndarray) -> np.ndarray:
        return self.lam + self.dropout / (1.0 - self.dropout) * np.diag(gram)


def _dlae_solution(gram: np.ndarray, lam: float, dropout: float) -> tuple[np.ndarray, np.ndarray]:
    """``(G + Lambda)`` factor input and the penalty: ``Lambda = lam + p/(1-p) diag(G)``."""
    penalty = lam + dropout / (1.0 - dropout) * np.diag(gram)
    g = gram.copy()
    g[np.diag_indices_from(g)] += penalty
    return g, penalty


def _check_dlae_args(lam: float, dropout: float, alpha: float) -> None:
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")


class _ItemItemModel(Recommender):
    """Shared scoring of the linear models here: ``scores = history @ weights``."""

    weights: np.ndarray | None = None

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted before scoring")
        if data.n_items != self.weights.shape[0]:
            raise ValueError(
                f"data has {data.n_items} items, the model was fitted on {self.weights.shape[0]}"
            )
        rows = sp.csr_matrix(data.interactions[np.asarray(users, dtype=np.int64)], dtype=np.float32)
        rows.data[:] = 1.0
        return np.asarray(rows @ self.weights, dtype=np.float32)


class DLAE(_ItemItemModel):
    """``DLAE(lam=200.0, dropout=0.75, alpha=0.25)``: dropout-emphasised linear autoencoder, item side."""

    name: ClassVar[str] = "dlae"

    def __init__(self, lam: float = 200.0, dropout: float = 0.75, alpha: float = 0.25) -> None:
        _check_dlae_args(lam, dropout, alpha)
        self.lam, self.dropout, self.alpha = float(lam), float(dropout), float(alpha)
        self.weights = None

    def fit(self, data: InteractionData) -> DLAE:
        x = sp.csr_matrix(data.interactions, dtype=np.float64)
        x.data[:] = 1.0
        n_u = np.asarray(x.sum(axis=1)).ravel()
        # Row weights 1/n_u^alpha, rescaled so the Gram matrix keeps its overall size and lam its meaning.
        w = 1.0 / np.maximum(n_u, 1.0) ** self.alpha
        scale = float(np.mean(n_u ** (2 * self.alpha)))
        xw = sp.diags(w) @ x
        gram = np.asarray((xw.T @ xw).toarray()) * scale
        g, _ = _dlae_solution(gram, self.lam, self.dropout)
        self.weights = np.linalg.solve(g, gram).astype(np.float32)
        return self


class UserDLAE(_ItemItemModel):
    """``UserDLAE(lam=200.0, dropout=0.67, alpha=0.25)``: the user-user linear autoencoder.

    Fits ``W = (G + Lambda)^-1 G`` over users (``G = X D X^T``, ``D`` = item weights ``1/n_i^(2 alpha)``)
    and folds it into the item-item matrix ``K = D X^T (G + Lambda)^-1 X`` so that any history row,
    including one not seen in training, is scored as ``x K``.
    """

    name: ClassVar[str] = "user_dlae"

    def __init__(self, lam: float = 200.0, dropout: float = 0.67, alpha: float = 0.25) -> None:
        _check_dlae_args(lam, dropout, alpha)
        self.lam, self.dropout, self.alpha = float(lam), float(dropout), float(alpha)
        self.weights = None

    def fit(self, data: InteractionData) -> UserDLAE:
        x = sp.csr_matrix(data.interactions, dtype=np.float64)
        x.data[:] = 1.0
        n_i = np.asarray(x.sum(axis=0)).ravel()
        # Column weights 1/n_i^(2 alpha), rescaled so the Gram matrix keeps its overall size.
        d = float(np.mean(n_i ** (2 * self.alpha))) / np.maximum(n_i, 1.0) ** (2 * self.alpha)
        xd = x @ sp.diags(d)
        gram = np.asarray((xd @ x.T).toarray())  # users x users
        g, _ = _dlae_solution(gram, self.lam, self.dropout)
        solved = np.linalg.solve(g, x.toarray())  # (G + Lambda)^-1 X
        self.weights = np.asarray(xd.T @ solved, dtype=np.float32)  # D X^T (G + Lambda)^-1 X
        return self
