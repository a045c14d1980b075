"""A large synthetic interaction set (10 million by default) for training-throughput measurements.

Generated in a few seconds with vectorised numpy from one seed. It has the shape of the real problem
without its size limits: users belong to latent taste clusters, each cluster prefers a different
(Zipf-distributed) slice of the catalogue, user side features are noisy views of the cluster (the
"course profile") and item features noisy views of the items' cluster loadings (the "product topics"),
so the hybrid has real signal to fit while the benchmark measures speed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData


def synthetic_interactions(
    n_interactions: int = 10_000_000,
    n_users: int | None = None,
    n_items: int = 20_000,
    n_clusters: int = 50,
    user_feat_dim: int = 32,
    item_feat_dim: int = 32,
    seed: int = 0,
) -> InteractionData:
    """``InteractionData`` with about ``n_interactions`` distinct (user, item) pairs.

    ``n_users`` defaults to ``n_interactions / 100`` (100 interactions per user on average). Duplicate
    draws are merged, so the exact count is ``data.interactions.nnz`` (within a few percent of the ask).
    """
    if n_interactions < 1:
        raise ValueError(f"n_interactions must be positive, got {n_interactions}")
    if n_items < 2 or n_clusters < 1:
        raise ValueError(f"need n_items >= 2 and n_clusters >= 1, got {n_items}, {n_clusters}")
    n_users = n_users if n_users is not None else max(1, n_interactions // 100)
    if n_users < 1:
        raise ValueError(f"n_users must be positive, got {n_users}")
    rng = np.random.default_rng(seed)
    cluster = rng.integers(n_clusters, size=n_users)
    # lognormal activity, scaled so the expected total matches the request (plus a margin for duplicates)
    activity = rng.lognormal(0.0, 0.8, size=n_users)
    counts = np.maximum(1, np.round(activity / activity.sum() * n_interactions * 1.12)).astype(np.int64)
    counts = np.minimum(counts, n_items // 2)
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    # power-law popularity over a cluster-specific permutation of the catalogue: rank r has weight r^-0.8,
    # drawn by inverting the continuous CDF
    beta = 0.8
    u01 = rng.random(users.size)
    ranks = (((n_items ** (1 - beta) - 1) * u01 + 1) ** (1 / (1 - beta))).astype(np.int64) - 1
    ranks = np.clip(ranks, 0, n_items - 1)
    shift = rng.integers(n_items, size=n_clusters)
    stride = 7919 % n_items or 1  # a prime stride makes each cluster's slice a different permutation
    items = (shift[cluster[users]] + ranks * stride) % n_items
    mixing = rng.random(users.size) < 0.2  # a fifth of the events are uniform exploration
    items[mixing] = rng.integers(n_items, size=int(mixing.sum()))
    mat = sp.csr_matrix((np.ones(users.size, dtype=np.float32), (users, items)), shape=(n_users, n_items))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    centroids = rng.normal(size=(n_clusters, user_feat_dim)).astype(np.float32)
    user_features = centroids[cluster] + 0.5 * rng.normal(size=(n_users, user_feat_dim)).astype(np.float32)
    # loading[i, c] = 1 when item i is among the 200 most popular items of cluster c
    loading = np.zeros((n_items, n_clusters), dtype=np.float32)
    head = (shift[None, :] + np.arange(min(200, n_items))[:, None] * stride) % n_items
    loading[head, np.broadcast_to(np.arange(n_clusters), head.shape)] = 1.0
    proj = rng.normal(size=(n_clusters, item_feat_dim)).astype(np.float32) / np.sqrt(n_clusters)
    item_features = loading @ proj + 0.1 * rng.normal(size=(n_items, item_feat_dim)).astype(np.float32)
    return InteractionData(
        interactions=mat,
        item_features=item_features.astype(np.float32),
        user_features=user_features.astype(np.float32),
        meta={"dataset": "synthetic", "seed": seed, "n_clusters": n_clusters},
    )
