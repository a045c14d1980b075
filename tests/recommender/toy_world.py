"""The small planted world the behavioural suite and the tuning tests fit models on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData

N_ITEMS = 30
N_WARM = 120
N_COLD = 30
TOPIC_DIM = 4


@dataclass(frozen=True)
class Toy:
    data: InteractionData
    user_group: np.ndarray
    item_group: np.ndarray
    warm: np.ndarray
    cold: np.ndarray


def make_toy(seed: int = 0) -> Toy:
    rng = np.random.default_rng(seed)
    n_users = N_WARM + N_COLD
    user_group = np.arange(n_users) % 2
    item_group = (np.arange(N_ITEMS) >= N_ITEMS // 2).astype(int)
    popularity = rng.permutation(np.linspace(1.0, 3.0, N_ITEMS))
    rows, cols = [], []
    for u in range(N_WARM):
        weights = np.where(item_group == user_group[u], 1.0, 0.08) * popularity
        items = rng.choice(N_ITEMS, size=6, replace=False, p=weights / weights.sum())
        rows += [u] * len(items)
        cols += items.tolist()
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, N_ITEMS))
    item_features = np.zeros((N_ITEMS, TOPIC_DIM), dtype=np.float32)
    item_features[:, 0] = item_group == 0
    item_features[:, 1] = item_group == 1
    item_features += rng.normal(scale=0.1, size=item_features.shape).astype(np.float32)
    topics = np.zeros((n_users, TOPIC_DIM), dtype=np.float32)
    topics[:, 0] = user_group == 0
    topics[:, 1] = user_group == 1
    topics += rng.normal(scale=0.15, size=topics.shape).astype(np.float32)
    behaviour = rng.normal(size=(n_users, 2)).astype(np.float32)
    data = InteractionData(
        interactions=x,
        item_features=item_features,
        user_features=np.hstack([topics, behaviour]),
        meta={"user_topic_dim": TOPIC_DIM},
    )
    return Toy(data, user_group, item_group, np.arange(N_WARM), np.arange(N_WARM, n_users))
