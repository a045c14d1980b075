"""EMCDR-style cross-domain baseline (Man et al., IJCAI 2017), with a linear mapping.

1. Target domain: a truncated SVD of the binary target interaction matrix gives item factors ``V``; a
   user's target embedding is the fold-in ``x_u V`` (PureSVD, Cremonesi et al. 2010).
2. Source domain: the user side features (the source-domain behaviour or profile) are standardised and
   reduced by a truncated SVD to source embeddings ``s_u``.
3. Mapping: a ridge regression ``s_u -> x_u V`` fitted on the users who have both (the overlapping
   training users).
4. Scoring: users with target history use their own fold-in; users without it (cold start) use the
   mapped embedding. Score = embedding . ``V^T``.

It is the standard "embed both domains, learn a map between them" baseline the hybrid two-tower model
has to beat: the map is fitted after, and independently of, the target factorisation, whereas the hybrid
learns the feature path end to end against the ranking loss.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import Ridge

from recommender.models.base import InteractionData, Recommender

_STD_FLOOR = 1e-3


class EMCDR(Recommender):
    """``EMCDR(target_dim=32, source_dim=32, ridge=1.0, scale_source=True, seed=0)``."""

    name: ClassVar[str] = "emcdr"
    uses_features: ClassVar[bool] = True
    state_fields: ClassVar[tuple[str, ...]] = (
        "item_factors",
        "source_components",
        "mean",
        "std",
        "map_coef",
        "map_intercept",
    )

    def __init__(
        self,
        target_dim: int = 32,
        source_dim: int = 32,
        ridge: float = 1.0,
        scale_source: bool = True,
        seed: int = 0,
    ) -> None:
        if target_dim < 1 or source_dim < 1:
            raise ValueError(f"target_dim and source_dim must be positive, got {target_dim}, {source_dim}")
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.target_dim = target_dim
        self.source_dim = source_dim
        self.ridge = float(ridge)
        self.scale_source = scale_source
        self.seed = seed
        self.item_factors: np.ndarray | None = None
        self.source_components: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.map_coef: np.ndarray | None = None
        self.map_intercept: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "target_dim": self.target_dim,
            "source_dim": self.source_dim,
            "ridge": self.ridge,
            "scale_source": self.scale_source,
            "seed": self.seed,
        }

    def _source_embedding(self, user_features: np.ndarray) -> np.ndarray:
        assert self.mean is not None and self.std is not None and self.source_components is not None
        z = (np.asarray(user_features, dtype=np.float64) - self.mean) / self.std
        return z @ self.source_components.T

    def fit(self, data: InteractionData) -> EMCDR:
        if data.user_features is None:
            raise ValueError("EMCDR needs data.user_features (the source-domain profile of each user)")
        uf = np.asarray(data.user_features, dtype=np.float64)
        if uf.ndim != 2 or uf.shape[0] != data.n_users:
            raise ValueError(f"user_features must have shape ({data.n_users}, e), got {uf.shape}")
        x = sp.csr_matrix(data.interactions, dtype=np.float64, copy=True)
        x.eliminate_zeros()
        x.data[:] = 1.0
        warm = np.flatnonzero(np.diff(x.indptr) > 0)
        if warm.size < 2:
            raise ValueError("EMCDR needs at least two users with target-domain history to fit the map")
        k_t = max(1, min(self.target_dim, min(x.shape) - 1))
        target_svd = TruncatedSVD(n_components=k_t, algorithm="randomized", random_state=self.seed)
        target_svd.fit(x)
        self.item_factors = np.asarray(target_svd.components_.T, dtype=np.float64)  # (n_items, k_t)

        self.mean = uf.mean(axis=0)
        self.std = np.maximum(uf.std(axis=0), _STD_FLOOR) if self.scale_source else np.ones(uf.shape[1])
        k_s = max(1, min(self.source_dim, uf.shape[1] - 1, uf.shape[0] - 1))
        source_svd = TruncatedSVD(n_components=k_s, algorithm="randomized", random_state=self.seed)
        source_svd.fit((uf - self.mean) / self.std)
        self.source_components = np.asarray(source_svd.components_, dtype=np.float64)

        source = self._source_embedding(uf[warm])
        target = np.asarray(x[warm] @ self.item_factors)
        ridge = Ridge(alpha=self.ridge).fit(source, target)
        self.map_coef = np.asarray(ridge.coef_, dtype=np.float64)  # (k_t, k_s)
        self.map_intercept = np.asarray(ridge.intercept_, dtype=np.float64)
        self._remember(data)
        return self

    def user_embeddings(self, history: sp.csr_matrix, features: np.ndarray) -> np.ndarray:
        """Target-space embeddings: own fold-in for users with history, mapped source embedding otherwise."""
        assert self.item_factors is not None and self.map_coef is not None and self.map_intercept is not None
        emb = np.asarray(history @ self.item_factors)
        cold = np.diff(history.indptr) == 0
        if cold.any():
            emb[cold] = self._source_embedding(features[cold]) @ self.map_coef.T + self.map_intercept
        return emb

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.item_factors is not None and features is not None
        emb = self.user_embeddings(history, features)
        return np.asarray(emb @ self.item_factors.T, dtype=np.float32)
