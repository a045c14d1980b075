"""Item-item collaborative filtering with cosine similarity (Sarwar et al. 2001; Deshpande & Karypis 2004).

``sim(i, j) = <x_i, x_j> / (||x_i|| ||x_j|| + shrink)`` over item columns of the interaction matrix; only
the ``k`` most similar neighbours of each item are kept, which both denoises and bounds memory. A user's
score for item ``j`` is the sum of the similarities between ``j`` and the items in the user's history
(weighted by the interaction values), so it needs target-domain history: cold-start users get all zeros,
which is why it is blended with a content model.

The similarity matrix is computed in row blocks so memory stays ``O(block x n_items)`` rather than
``O(n_items^2)`` even for catalogues of tens of thousands of items.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender

_BLOCK = 1024


class ItemKNN(Recommender):
    """``ItemKNN(k=100, shrink=0.0)``: cosine item-item CF keeping the top-``k`` neighbours per item."""

    name: ClassVar[str] = "itemknn"

    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {shrink}")
        self.k = int(k)
        self.shrink = float(shrink)
        self.similarity: sp.csr_matrix | None = None

    def fit(self, data: InteractionData) -> ItemKNN:
        x = sp.csc_matrix(data.interactions, dtype=np.float64)
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
        return self

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        if self.similarity is None:
            raise RuntimeError("ItemKNN must be fitted before scoring")
        if data.n_items != self.similarity.shape[0]:
            raise ValueError(
                f"data has {data.n_items} items, the model was fitted on {self.similarity.shape[0]}"
            )
        history = sp.csr_matrix(data.interactions[np.asarray(users, dtype=np.int64)], dtype=np.float32)
        return np.asarray((history @ self.similarity).toarray(), dtype=np.float32)
