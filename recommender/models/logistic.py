"""Per-item logistic regression on the other items a user holds (and the user's features), fitted in torch.

For every item ``j`` one logistic regression predicts "the user holds ``j``" from the rest of the user's
history and, optionally, the standardised side features::

    logit_j = sum_{i != j} x_i W_ij + z(f) V_j + b_j

All items are fitted at once as one multi-output problem (the item-item block has a zero diagonal, so an
item never predicts itself), by full-batch L-BFGS on the mean binary cross-entropy plus ``l2`` times the
squared weights. This is the "logistic regression on owned products" that is strong on small insurance
catalogues: the closed-form linear autoencoders fit squared error, this one the likelihood of holding a
product. An empty history is scored by the intercepts (and the features), the items' base rates.
Fitting runs in torch on the CPU by default and on ``device="cuda"`` when asked; scoring is numpy.
It forms dense (users x items) logits while fitting, so it is meant for catalogues up to a few thousand
items.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from recommender.models.base import InteractionData, Recommender
from recommender.trainer import deterministic, resolve_device

_STD_FLOOR = 1e-3


class ItemLogistic(Recommender):
    """``ItemLogistic(l2=1e-4, use_history=True, use_features=False, max_iter=200, device=None)``."""

    name: ClassVar[str] = "item_logistic"
    state_fields: ClassVar[tuple[str, ...]] = ("w", "v", "b", "feature_mean", "feature_std")

    def __init__(
        self,
        l2: float = 1e-4,
        use_history: bool = True,
        use_features: bool = False,
        max_iter: int = 200,
        device: str | None = "cpu",
    ) -> None:
        if not l2 > 0:
            raise ValueError(f"l2 must be positive, got {l2!r}")
        if not (use_history or use_features):
            raise ValueError("ItemLogistic needs use_history or use_features")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.l2 = float(l2)
        self.use_history, self.use_features = bool(use_history), bool(use_features)
        self.max_iter = int(max_iter)
        self.device = device
        self.w: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.feature_mean: np.ndarray | None = None
        self.feature_std: np.ndarray | None = None

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return self.v is not None

    def get_params(self) -> dict[str, Any]:
        return {
            "l2": self.l2,
            "use_history": self.use_history,
            "use_features": self.use_features,
            "max_iter": self.max_iter,
            "device": self.device,
        }

    def fit(self, data: InteractionData) -> ItemLogistic:
        dev = resolve_device(self.device)
        x = sp.csr_matrix(data.interactions, dtype=np.float32, copy=True)
        x.eliminate_zeros()
        x.data[:] = 1.0
        n_items = x.shape[1]
        feats = None
        if self.use_features:
            if data.user_features is None:
                raise ValueError("ItemLogistic(use_features=True) needs data.user_features")
            uf = np.asarray(data.user_features, dtype=np.float32)
            self.feature_mean = uf.mean(axis=0)
            self.feature_std = np.maximum(uf.std(axis=0), _STD_FLOOR)
            feats = torch.as_tensor((uf - self.feature_mean) / self.feature_std, device=dev)
        y = torch.as_tensor(x.toarray(), device=dev)
        coo = x.tocoo()
        xs = torch.sparse_coo_tensor(
            torch.as_tensor(np.vstack([coo.row, coo.col]), dtype=torch.long),
            torch.as_tensor(coo.data),
            size=x.shape,
            dtype=torch.float32,
            device=dev,
            check_invariants=True,
        )
        off_diag = 1.0 - torch.eye(n_items, device=dev)
        with deterministic(0):
            w = torch.zeros(n_items, n_items, device=dev, requires_grad=True)
            v = (
                None
                if feats is None
                else torch.zeros(feats.shape[1], n_items, device=dev, requires_grad=True)
            )
            b = torch.zeros(n_items, device=dev, requires_grad=True)
            params = [p for p in (w, v, b) if p is not None]
            if not self.use_history:
                params.remove(w)
            opt = torch.optim.LBFGS(params, lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                opt.zero_grad()
                logits = b.expand(y.shape[0], n_items)
                penalty = torch.zeros((), device=dev)
                if self.use_history:
                    wm = w * off_diag
                    logits = logits + torch.sparse.mm(xs, wm)
                    penalty = penalty + (wm**2).sum()
                if v is not None and feats is not None:
                    logits = logits + feats @ v
                    penalty = penalty + (v**2).sum()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum")
                total = loss / y.shape[0] + self.l2 * penalty
                total.backward()
                return total

            opt.step(closure)
        self.w = (w * off_diag).detach().cpu().numpy().astype(np.float32) if self.use_history else None
        self.v = None if v is None else v.detach().cpu().numpy().astype(np.float32)
        self.b = b.detach().cpu().numpy().astype(np.float32)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.b is not None
        out = np.broadcast_to(self.b, (history.shape[0], self.b.size)).astype(np.float32)
        if self.w is not None:
            out = out + np.asarray(history @ self.w, dtype=np.float32)
        if self.v is not None and features is not None:
            out = out + ((features - self.feature_mean) / self.feature_std) @ self.v
        return out
