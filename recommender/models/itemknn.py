"""Item-item collaborative filtering with cosine similarity (Sarwar et al. 2001; Deshpande & Karypis 2004).

``sim(i, j) = <x_i, x_j> / (||x_i|| ||x_j|| + shrink)`` over item columns of the interaction matrix; only
the ``k`` most similar neighbours of each item are kept, which both denoises and bounds memory. A user's
score for item ``j`` is the sum of the similarities between ``j`` and the items in the user's history.
An empty history has nothing to sum, so it gets the training popularity instead (the model keeps it).

The similarity matrix is computed in row blocks so memory stays ``O(block x n_items)`` rather than
``O(n_items^2)`` even for catalogues of tens of thousands of items.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender, popularity_prior, with_prior

_BLOCK = 1024


class ItemKNN(Recommender):
    """``ItemKNN(k=100, shrink=0.0)``: cosine item-item CF keeping the top-``k`` neighbours per item."""

    name: ClassVar[str] = "itemknn"
    state_fields: ClassVar[tuple[str, ...]] = ("prior",)

    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {shrink}")
        self.k = int(k)
        self.shrink = float(shrink)
        self.similarity: sp.csr_matrix | None = None
        self.prior: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {"k": self.k, "shrink": self.shrink}

    def fit(self, data: InteractionData) -> ItemKNN:
        x = sp.csc_matrix(data.interactions, dtype=np.float64)
        x.data[:] = 1.0
        n_items = x.shape[1]
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        xt = x.T.tocsr()
        k = min(self.k, max(n_items - 1, 1))
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for start in range(0, n_items, _BLOCK):
            stop = min(start + _BLOCK, n_items)
            dots = np.asarray((xt[start:stop] @ x).toarray(), dtype=np.float64)  # (block, n_items)
            denom = norms[start:stop, None] * norms[None, :] + self.shrink
            sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            if k < n_items:
                # argpartition is deterministic for a given input: ties at the k-th place always resolve alike
                top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(n_items), sim.shape)
            top_vals = np.take_along_axis(sim, top, axis=1)
            keep = top_vals > 0
            rows.append(np.repeat(np.arange(start, stop), keep.sum(axis=1)))
            cols.append(top[keep])
            vals.append(top_vals[keep])
        # similarity[j, i]: how much item i (in a history) supports recommending item j
        neighbours = sp.csr_matrix(
            (
                np.concatenate(vals) if vals else np.zeros(0),
                (
                    np.concatenate(rows) if rows else np.zeros(0, int),
                    np.concatenate(cols) if cols else np.zeros(0, int),
                ),
            ),
            shape=(n_items, n_items),
        )
        self.similarity = sp.csr_matrix(neighbours.T, dtype=np.float32)
        self.prior = popularity_prior(data.interactions)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.similarity is not None
        scores = np.asarray((history @ self.similarity).toarray(), dtype=np.float32)
        return with_prior(scores, history, self.prior)

    def get_state(self) -> dict[str, np.ndarray]:
        state = super().get_state()
        assert self.similarity is not None
        sim = sp.csr_matrix(self.similarity)
        state.update(
            sim_data=sim.data,
            sim_indices=sim.indices.astype(np.int64),
            sim_indptr=sim.indptr.astype(np.int64),
        )
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        super().set_state(state)
        n = int(state["n_items"][0])
        self.similarity = sp.csr_matrix(
            (state["sim_data"], state["sim_indices"], state["sim_indptr"]), shape=(n, n), dtype=np.float32
        )
