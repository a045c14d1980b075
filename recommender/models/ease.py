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
into an item-item matrix ``K = D X^T (X D X^T + Lambda)^-1 X``, so it scores new users too.

Scale. The exact solutions form an item-by-item inverse: fine up to a few tens of thousands of items,
impossible at 50,000 (20 GB in float64). ``DLAE(rank=r)`` replaces ``G`` by its rank-``r`` part
``V S^2 V^T`` from a randomised SVD of the weighted interaction matrix while keeping the exact diagonal
penalty; by the Woodbury identity ``B = Lambda^-1 V M V^T`` with the ``r x r`` matrix
``M = (S^-2 + V^T Lambda^-1 V)^-1``, so the model is two ``n_items x r`` factors, fitted in time linear
in the interactions and scored without ever forming an ``n_items^2`` matrix. ``rank="auto"`` uses the
exact form up to :data:`EXACT_MAX_ITEMS` items and rank :data:`AUTO_RANK` beyond.

``device``: ``None`` solves in numpy; ``"cpu"`` or ``"cuda"`` solve the item-by-item system in torch on
that device (the cubic part of the fit; a GPU is never required). Every model here answers an empty
history with the training popularity it keeps.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from recommender.models.base import InteractionData, Recommender, popularity_prior, with_prior

#: ``rank="auto"``: catalogues up to this size get the exact solution.
EXACT_MAX_ITEMS = 20_000
#: ``rank="auto"``: the rank of the approximation beyond :data:`EXACT_MAX_ITEMS` items.
AUTO_RANK = 256


def _binary(interactions: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(interactions, dtype=np.float64, copy=True)
    x.eliminate_zeros()
    x.data[:] = 1.0
    return x


def _gram(x: sp.csr_matrix) -> np.ndarray:
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def _rows_weighted(x: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Rows weighted by ``1/n_u^alpha`` (``n_u``: the row's interactions) and rescaled so the Gram matrix
    keeps its overall size (DLAE's user weighting)."""
    n_u = np.diff(x.indptr).astype(np.float64)
    w = 1.0 / np.maximum(n_u, 1.0) ** alpha
    scale = float(np.mean(n_u ** (2 * alpha)))
    return sp.csr_matrix(sp.diags(w * np.sqrt(scale)) @ x)


def _dlae_solution(gram: np.ndarray, lam: float, dropout: float, device: str | None) -> np.ndarray:
    """``(G + Lambda)^-1 G`` with DLAE's penalty ``Lambda = lam + p/(1-p) diag(G)``."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += lam + dropout / (1.0 - dropout) * np.diag(gram)
    return _solve(g, gram, device)


def _solve(a: np.ndarray, b: np.ndarray, device: str | None) -> np.ndarray:
    """``a^-1 b`` in numpy, or in torch on ``device``."""
    if device is None:
        return np.linalg.solve(a, b)
    import torch

    from recommender.trainer import resolve_device

    dev = resolve_device(device)
    out = torch.linalg.solve(torch.as_tensor(a, device=dev), torch.as_tensor(b, device=dev))
    return out.cpu().numpy()


def _zero_diag_solution(gram: np.ndarray, penalty: np.ndarray, device: str | None) -> np.ndarray:
    """``B`` minimising ``||X - XB||^2 + sum_j penalty_j ||B_j||^2`` subject to ``diag(B) = 0``."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += penalty
    p = _solve(g, np.eye(g.shape[0]), device)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


def _check_device(device: str | None) -> str | None:
    if device is not None and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be None, 'cpu' or 'cuda', got {device!r}")
    return device


class _LinearItemModel(Recommender):
    """Shared scoring of the item-item linear models: ``history @ weights``, popularity when empty."""

    state_fields: ClassVar[tuple[str, ...]] = ("weights", "prior")
    weights: np.ndarray | None = None
    prior: np.ndarray | None = None

    def _finish(self, data: InteractionData, weights: np.ndarray) -> None:
        self.weights = np.asarray(weights, dtype=np.float32)
        self.prior = popularity_prior(data.interactions)
        self._remember(data)

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.weights is not None
        return with_prior(np.asarray(history @ self.weights, dtype=np.float32), history, self.prior)


class EASE(_LinearItemModel):
    """Closed-form EASE item-item model, ``EASE(lam=300.0, device=None)``."""

    name: ClassVar[str] = "ease"

    def __init__(self, lam: float = 300.0, device: str | None = None) -> None:
        if not lam > 0:
            raise ValueError(f"lam must be positive, got {lam!r}")
        self.lam = float(lam)
        self.device = _check_device(device)

    def get_params(self) -> dict[str, Any]:
        return {"lam": self.lam, "device": self.device}

    def _penalty(self, gram: np.ndarray) -> np.ndarray:
        return np.full(gram.shape[0], self.lam)

    def fit(self, data: InteractionData) -> EASE:
        gram = _gram(_binary(data.interactions))
        self._finish(data, _zero_diag_solution(gram, self._penalty(gram), self.device))
        return self


class EDLAE(EASE):
    """EASE with the dropout-emphasised penalty ``lam + p/(1-p) * diag(X^T X)`` (closed form)."""

    name: ClassVar[str] = "edlae"

    def __init__(self, lam: float = 50.0, dropout: float = 0.25, device: str | None = None) -> None:
        super().__init__(lam=lam, device=device)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "dropout": self.dropout}

    def _penalty(self, gram: np.ndarray) -> np.ndarray:
        return self.lam + self.dropout / (1.0 - self.dropout) * np.diag(gram)


def _check_dlae_args(lam: float, dropout: float, alpha: float) -> None:
    if not lam > 0:
        raise ValueError(f"lam must be positive, got {lam!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")


class DLAE(_LinearItemModel):
    """``DLAE(lam=200.0, dropout=0.75, alpha=0.25, rank=None, device=None, seed=0)``: the item-side
    dropout-emphasised linear autoencoder; ``rank`` an int or ``"auto"`` for the low-rank path."""

    name: ClassVar[str] = "dlae"
    state_fields: ClassVar[tuple[str, ...]] = ("weights", "prior", "left", "right")

    def __init__(
        self,
        lam: float = 200.0,
        dropout: float = 0.75,
        alpha: float = 0.25,
        rank: int | Literal["auto"] | None = None,
        device: str | None = None,
        seed: int = 0,
    ) -> None:
        _check_dlae_args(lam, dropout, alpha)
        if rank is not None and rank != "auto" and not (isinstance(rank, int) and rank >= 1):
            raise ValueError(f"rank must be a positive int, 'auto' or None, got {rank!r}")
        self.lam, self.dropout, self.alpha = float(lam), float(dropout), float(alpha)
        self.rank = rank
        self.device = _check_device(device)
        self.seed = int(seed)
        self.left: np.ndarray | None = None
        self.right: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "lam": self.lam,
            "dropout": self.dropout,
            "alpha": self.alpha,
            "rank": self.rank,
            "device": self.device,
            "seed": self.seed,
        }

    def _weighted(self, data: InteractionData) -> sp.csr_matrix:
        """Rows weighted by ``1/n_u^alpha`` and rescaled so the Gram matrix keeps its overall size."""
        return _rows_weighted(_binary(data.interactions), self.alpha)

    def effective_rank(self, n_items: int) -> int | None:
        """The rank this model fits a catalogue of ``n_items`` with (``None``: exact)."""
        if self.rank == "auto":
            return AUTO_RANK if n_items > EXACT_MAX_ITEMS else None
        if self.rank is None or self.rank >= n_items:
            return None
        return int(self.rank)

    def fit(self, data: InteractionData) -> DLAE:
        xw = self._weighted(data)
        rank = self.effective_rank(data.n_items)
        self.weights = self.left = self.right = None
        if rank is None:
            self._finish(data, _dlae_solution(_gram(xw), self.lam, self.dropout, self.device))
            return self
        diag = np.asarray(xw.multiply(xw).sum(axis=0)).ravel()
        penalty = self.lam + self.dropout / (1.0 - self.dropout) * diag
        _, s, vt = randomized_svd(xw, n_components=rank, n_oversamples=16, n_iter=4, random_state=self.seed)
        v = vt.T  # (n_items, r)
        inv_pen = 1.0 / penalty
        inner = (v * inv_pen[:, None]).T @ v  # V^T Lambda^-1 V
        core = np.eye(rank) + (s[:, None] * inner) * s[None, :]
        m = s[:, None] * np.linalg.solve(core, np.diag(s))  # (S^-2 + V^T Lambda^-1 V)^-1
        self.left = ((v * inv_pen[:, None]) @ m).astype(np.float32)
        self.right = v.astype(np.float32)
        self.prior = popularity_prior(data.interactions)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        if self.weights is not None:
            return super()._score(history, features)
        assert self.left is not None and self.right is not None
        scores = np.asarray(history @ self.left, dtype=np.float32) @ self.right.T
        return with_prior(scores, history, self.prior)


class UserDLAE(_LinearItemModel):
    """``UserDLAE(lam=200.0, dropout=0.67, alpha=0.25, device=None)``: the user-user linear autoencoder.

    Fits ``W = (G + Lambda)^-1 G`` over users (``G = X D X^T``, ``D`` = item weights ``1/n_i^(2 alpha)``)
    and folds it into the item-item matrix ``K = D X^T (G + Lambda)^-1 X`` so that any history row,
    including one not seen in training, is scored as ``x K``.
    """

    name: ClassVar[str] = "user_dlae"

    def __init__(
        self, lam: float = 200.0, dropout: float = 0.67, alpha: float = 0.25, device: str | None = None
    ) -> None:
        _check_dlae_args(lam, dropout, alpha)
        self.lam, self.dropout, self.alpha = float(lam), float(dropout), float(alpha)
        self.device = _check_device(device)

    def get_params(self) -> dict[str, Any]:
        return {"lam": self.lam, "dropout": self.dropout, "alpha": self.alpha, "device": self.device}

    def fit(self, data: InteractionData) -> UserDLAE:
        x = _binary(data.interactions)
        n_i = np.asarray(x.sum(axis=0)).ravel()
        # Column weights 1/n_i^(2 alpha), rescaled so the Gram matrix keeps its overall size.
        d = float(np.mean(n_i ** (2 * self.alpha))) / np.maximum(n_i, 1.0) ** (2 * self.alpha)
        xd = x @ sp.diags(d)
        gram = np.asarray((xd @ x.T).toarray())  # users x users
        g = gram.copy()
        g[np.diag_indices_from(g)] += self.lam + self.dropout / (1.0 - self.dropout) * np.diag(gram)
        solved = _solve(g, x.toarray(), self.device)  # (G + Lambda)^-1 X
        self._finish(data, np.asarray(xd.T @ solved))  # D X^T (G + Lambda)^-1 X
        return self
