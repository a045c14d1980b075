"""``RatedSeqDLAE``: the dropout-emphasised linear autoencoder on rated histories, with the time order.

The item-item models of :mod:`recommender.models.ease` see a history as a set of items. Explicit data
usually says more, and this model uses two more signals where :class:`InteractionData` carries them:

* how much a user liked an item (``values``, e.g. a 1-5 rating): every interaction enters the model
  with the weight ``1 + slope * (value - centre)``, in the Gram matrix it is fitted on and in the
  history a user is scored from (the model reads weighted histories, ``weighted_history``); a binary
  history is scored as if every item had the same value;
* when it happened (``times``): two items a user interacted with within ``window`` positions of each
  other in time order add ``exp(-lag / tau)`` to an item-item matrix ``C``, both ways (items rated in
  one session go together more than items rated years apart).

The fit is the DLAE solution ``B = (G + Lambda)^-1 G`` on ``G = X_w^T X_w + seq_weight * C``, with
``X_w`` the weighted interactions and its rows scaled by ``1/n_u^alpha`` (as in
:class:`~recommender.models.ease.DLAE`) and the dropout penalty ``Lambda = lam + p/(1-p) diag(G)``.
Scores are ``x_w B`` for a history ``x`` (its weights), the training popularity for an empty one. Without
``values`` the weights are all 1, without ``times`` there is no sequence term, and the model is DLAE.
The solution is exact (an item-by-item inverse), so catalogues are limited to
:data:`~recommender.models.ease.EXACT_MAX_ITEMS` items.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, with_prior
from recommender.models.ease import (
    EXACT_MAX_ITEMS,
    _binary,
    _check_device,
    _check_dlae_args,
    _dlae_solution,
    _gram,
    _LinearItemModel,
    _rows_weighted,
)


def sequence_cooccurrence(times: sp.spmatrix, window: int = 30, tau: float = 5.0) -> np.ndarray:
    """Dense symmetric (n_items, n_items) matrix: for every user, items ``lag <= window`` positions apart
    in the user's time order (ties broken by item index) add ``exp(-lag / tau)``; zero diagonal."""
    coo = sp.coo_matrix(times)
    order = np.lexsort((coo.col, coo.data, coo.row))
    users, items = coo.row[order], coo.col[order]
    n = int(coo.shape[1])
    rows, cols, vals = [], [], []
    for lag in range(1, window + 1):
        same = users[lag:] == users[:-lag]
        if not same.any():
            break
        a, b = items[:-lag][same], items[lag:][same]
        w = np.full(a.size, np.exp(-lag / tau))
        rows += [a, b]
        cols += [b, a]
        vals += [w, w]
    if not rows:
        return np.zeros((n, n))
    c = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    out = np.asarray(c.toarray(), dtype=np.float64)  # duplicates are summed
    np.fill_diagonal(out, 0.0)
    return out


class RatedSeqDLAE(_LinearItemModel):
    """``RatedSeqDLAE(lam=300.0, dropout=0.83, alpha=0.25, slope=0.2, centre=3.0, seq_weight=3.0,
    window=30, tau=5.0, device=None)``: DLAE on value-weighted interactions plus the time-order term."""

    name: ClassVar[str] = "rated_seq_dlae"
    weighted_history: ClassVar[bool] = True

    def __init__(
        self,
        lam: float = 300.0,
        dropout: float = 0.83,
        alpha: float = 0.25,
        slope: float = 0.2,
        centre: float = 3.0,
        seq_weight: float = 3.0,
        window: int = 30,
        tau: float = 5.0,
        device: str | None = None,
    ) -> None:
        _check_dlae_args(lam, dropout, alpha)
        if slope < 0 or seq_weight < 0:
            raise ValueError(f"slope and seq_weight must be >= 0, got {slope!r}, {seq_weight!r}")
        if not (isinstance(window, int) and window >= 1) or not tau > 0:
            raise ValueError(f"window must be a positive int and tau positive, got {window!r}, {tau!r}")
        self.lam, self.dropout, self.alpha = float(lam), float(dropout), float(alpha)
        self.slope, self.centre, self.seq_weight = float(slope), float(centre), float(seq_weight)
        self.window, self.tau = int(window), float(tau)
        self.device = _check_device(device)

    def get_params(self) -> dict[str, Any]:
        return {
            "lam": self.lam,
            "dropout": self.dropout,
            "alpha": self.alpha,
            "slope": self.slope,
            "centre": self.centre,
            "seq_weight": self.seq_weight,
            "window": self.window,
            "tau": self.tau,
            "device": self.device,
        }

    def _weighted(self, history: sp.spmatrix) -> sp.csr_matrix:
        """A history (or the data) with each value ``v`` replaced by ``max(1 + slope (v - centre), 0)``."""
        x = sp.csr_matrix(history, dtype=np.float64, copy=True)
        x.eliminate_zeros()
        x.data = np.maximum(1.0 + self.slope * (x.data - self.centre), 0.0)
        return x

    def fit(self, data: InteractionData) -> RatedSeqDLAE:
        if data.n_items > EXACT_MAX_ITEMS:
            raise ValueError(f"RatedSeqDLAE is exact: at most {EXACT_MAX_ITEMS} items, got {data.n_items}")
        if data.values is None:
            x = _binary(data.interactions)
        else:
            x = self._weighted(data.values)
            if x.nnz and x.data.min() <= 0:
                raise ValueError("slope and centre give some training values a weight <= 0")
        gram = _gram(_rows_weighted(x, self.alpha))
        if data.times is not None and self.seq_weight > 0:
            gram += self.seq_weight * sequence_cooccurrence(data.times, self.window, self.tau)
        self._finish(data, _dlae_solution(gram, self.lam, self.dropout, self.device))
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.weights is not None
        scores = np.asarray(self._weighted(history) @ self.weights, dtype=np.float32)
        return with_prior(scores, history, self.prior)
