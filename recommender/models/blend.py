"""A score-level blend of a collaborative model and a content model.

CF is strong where there is target-domain history and silent where there is none; content (via the
course profile) covers cold-start users. Raw scores of the two live on different scales (co-occurrence
sums vs cosines), so each model's scores are normalised per user before the ``alpha``-weighted sum:
min-max to [0, 1] (default) or z-scores. A user whose scores from one model are constant gets 0 from
that model, so the ranking falls to the other one.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender


def normalise_rows(scores: np.ndarray, method: Literal["minmax", "zscore"] = "minmax") -> np.ndarray:
    """Per-row min-max (to [0, 1]) or z-score normalisation; constant rows become all zeros."""
    s = np.asarray(scores, dtype=np.float64)
    s = np.where(np.isfinite(s), s, np.nan)  # -inf (masked items) must not define the range
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled by nan_to_num below
        return _normalise(s, method)


def _normalise(s: np.ndarray, method: str) -> np.ndarray:
    if method == "minmax":
        lo = np.nanmin(s, axis=1, keepdims=True) if s.shape[1] else np.zeros((s.shape[0], 1))
        hi = np.nanmax(s, axis=1, keepdims=True) if s.shape[1] else np.zeros((s.shape[0], 1))
        span = hi - lo
        out = np.divide(s - lo, span, out=np.zeros_like(s), where=span > 0)
    elif method == "zscore":
        mean = np.nanmean(s, axis=1, keepdims=True)
        std = np.nanstd(s, axis=1, keepdims=True)
        out = np.divide(s - mean, std, out=np.zeros_like(s), where=std > 0)
    else:
        raise ValueError(f"method must be 'minmax' or 'zscore', got {method!r}")
    return np.nan_to_num(out, nan=0.0)


class Blend(Recommender):
    """``Blend(cf, content, alpha=0.5)``: ``alpha * norm(cf) + (1 - alpha) * norm(content)`` per user."""

    name: ClassVar[str] = "blend"
    #: A history's values pass through to the members (each reads them or not).
    weighted_history: ClassVar[bool] = True

    def __init__(
        self,
        cf: Recommender,
        content: Recommender,
        alpha: float = 0.5,
        normalise: Literal["minmax", "zscore"] = "minmax",
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if normalise not in ("minmax", "zscore"):
            raise ValueError(f"normalise must be 'minmax' or 'zscore', got {normalise!r}")
        self.cf = cf
        self.content = content
        self.alpha = float(alpha)
        self.normalise: Literal["minmax", "zscore"] = normalise

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return self.cf.uses_features or self.content.uses_features

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "normalise": self.normalise}

    def children(self) -> dict[str, Recommender]:
        return {"cf": self.cf, "content": self.content}

    def fit(self, data: InteractionData) -> Blend:
        self.cf.fit(data)
        self.content.fit(data)
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        cf = normalise_rows(self.cf.score_history(history, features), self.normalise)
        content = normalise_rows(self.content.score_history(history, features), self.normalise)
        return np.asarray(self.alpha * cf + (1.0 - self.alpha) * content, dtype=np.float32)
