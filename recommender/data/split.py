"""The product-domain split every model is trained and judged on: conversions split in time.

One rule for the demo world and for the platform's own data (:func:`time_split`): conversions before the
cutoff train, the later ones (on products the learner did not hold) are held out, and the learners'
course-side profiles are built from the events before the cutoff only, so nothing from the held-out period
leaks into features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.data.dataset import KnowledgeDataset
from recommender.knowledge import KnowledgeSpace
from recommender.models.base import InteractionData
from recommender.profiles import ProfileBuilder, UserProfiles


@dataclass(frozen=True)
class ProductSplit:
    """Product-domain train/test split of a data set (the demo world, or the platform's own data).

    ``train.interactions``: users x products conversions before ``cutoff`` (binary);
    ``train.item_features``: product LSA topics; ``train.user_features``: course-domain profiles built
    from the training period only (topic-interest vector first, see :mod:`recommender.profiles`).
    ``test``: conversions at/after ``cutoff`` on products the user had not converted on before.
    ``cold_start[u]``: the user has no product history in train (the main case: knowledge is all we have).
    ``profile_builder`` is fitted on the training period and turns new course histories into profiles.
    """

    train: InteractionData
    test: sp.csr_matrix
    cold_start: np.ndarray
    cutoff: pd.Timestamp
    user_ids: list[str]
    product_ids: list[str]
    knowledge: KnowledgeSpace
    profiles: UserProfiles
    profile_builder: ProfileBuilder
    train_dataset: KnowledgeDataset

    @property
    def eval_users(self) -> np.ndarray:
        """Users with at least one held-out conversion."""
        return np.flatnonzero(np.diff(self.test.indptr) > 0)

    @property
    def cold_eval_users(self) -> np.ndarray:
        users = self.eval_users
        return users[self.cold_start[users]]

    @property
    def warm_eval_users(self) -> np.ndarray:
        users = self.eval_users
        return users[~self.cold_start[users]]


def _binary_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def time_split(
    ds: KnowledgeDataset, test_fraction: float = 0.3, seed: int = 0, n_topics: int = 32
) -> ProductSplit:
    """Split the conversions in time: the last ``test_fraction`` of conversions are held out.

    User features are the course-domain profiles from course events before the cutoff, so nothing from
    the test period leaks into features. Most held-out users convert for the first time after the cutoff,
    so most evaluation users are cold-start in the product domain, the case KnowLedger exists for.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    conv = ds.conversions
    if conv.empty:
        raise ValueError("there are no conversions to split")
    times = conv["timestamp"].sort_values().reset_index(drop=True)
    cutoff = pd.Timestamp(times.iloc[int(np.floor((1.0 - test_fraction) * (len(times) - 1)))])
    if (conv["timestamp"] < cutoff).sum() == 0:
        cutoff = pd.Timestamp(times.iloc[-1])

    user_ids = ds.users["user_id"].tolist()
    product_ids = ds.products["product_id"].tolist()
    u_index = pd.Index(user_ids)
    p_index = pd.Index(product_ids)
    is_train = (conv["timestamp"] < cutoff).to_numpy()
    rows = u_index.get_indexer(conv["user_id"])
    cols = p_index.get_indexer(conv["product_id"])
    shape = (len(user_ids), len(product_ids))
    train_m = _binary_matrix(rows[is_train], cols[is_train], shape)
    test_m = _binary_matrix(rows[~is_train], cols[~is_train], shape)
    test_m = sp.csr_matrix(test_m - test_m.multiply(train_m))
    test_m.eliminate_zeros()

    train_ds = KnowledgeDataset(
        users=ds.users,
        items=ds.items,
        interactions=ds.interactions[ds.interactions["timestamp"] < cutoff].reset_index(drop=True),
        products=ds.products,
        conversions=conv[is_train].reset_index(drop=True),
    )
    knowledge = KnowledgeSpace.fit(ds.item_texts(), ds.product_texts(), n_topics=n_topics, seed=seed)
    builder = ProfileBuilder(knowledge, seed=seed)
    profiles = builder.fit(train_ds, as_of=cutoff)
    train = InteractionData(
        interactions=train_m,
        item_features=knowledge.product_topics.astype(np.float32),
        user_features=profiles.model_features.astype(np.float32),
        meta={
            "user_topic_dim": knowledge.n_topics,
            "user_feature_names": profiles.model_feature_names,
            "user_ids": user_ids,
            "item_ids": product_ids,
            "domain": "products",
        },
    )
    cold = np.diff(train_m.indptr) == 0
    return ProductSplit(
        train=train,
        test=test_m,
        cold_start=cold,
        cutoff=cutoff,
        user_ids=user_ids,
        product_ids=product_ids,
        knowledge=knowledge,
        profiles=profiles,
        profile_builder=builder,
        train_dataset=train_ds,
    )
