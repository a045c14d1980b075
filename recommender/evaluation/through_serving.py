"""Scoring a served artifact on a product-domain split the way the service would answer.

The quality gate compares two model versions on the same held-out split: the candidate (trained on the
split's training period) and the version serving now (trained on anything). Each is scored through its
own serving path: its own profile builder turns the learners' course events before the cutoff into its
own features (as of the cutoff), its ranker scores its own products from the learners' product history,
and products a version does not know count as never recommended. Nothing of the held-out period is seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.data.split import ProductSplit
from recommender.evaluator import evaluate_queries
from recommender.profiles import ProfileBuilder
from recommender.serving import ProductRanker

NEVER = -1e300


def serving_features(builder: ProfileBuilder, split: ProductSplit, users: np.ndarray) -> np.ndarray:
    """The features ``builder`` gives ``users`` (rows of the split) from their events before the cutoff."""
    events = split.train_dataset.interactions
    events = events[events["item_id"].astype(str).isin(set(builder.item_ids))]
    ids = [split.user_ids[int(u)] for u in users]
    return builder.model_features(builder.transform(events, ids, as_of=split.cutoff))


def score_on_split(
    ranker: ProductRanker,
    builder: ProfileBuilder | None,
    split: ProductSplit,
    users: np.ndarray | None = None,
    k: int = 10,
) -> dict[str, Any]:
    """Ranking metrics of ``ranker`` (with its ``builder``) on ``split``'s held-out conversions of
    ``users`` (default: every learner with one)."""
    users = split.eval_users if users is None else np.asarray(users)
    if len(users) == 0:
        raise ValueError("no learner with a held-out conversion to score")
    if ranker.feature_dim and builder is None:
        raise ValueError("the ranker takes profile features but the artifact has no profile builder")
    features = None if builder is None else serving_features(builder, split, users)
    own = {pid: i for i, pid in enumerate(ranker.product_ids)}
    cols = np.array([own.get(pid, -1) for pid in split.product_ids])
    known = cols >= 0
    # the learners' product history in the ranker's own rows
    train = sp.csr_matrix(split.train.interactions[users])
    r, c = train.nonzero()
    keep = known[c]
    history = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (r[keep], cols[c[keep]])),
        shape=(len(users), ranker.n_products),
    )
    scores = ranker.score_batch(history, features)
    full = np.full((len(users), len(split.product_ids)), NEVER)
    full[:, known] = scores[:, cols[known]]
    row_of = np.arange(len(users), dtype=np.float64)[:, None]
    metrics = evaluate_queries(
        lambda _h, f: full[np.asarray(f)[:, 0].astype(np.int64)],
        train,
        row_of,
        split.test[users],
        k=k,
    )
    metrics["products_unknown"] = int((~known).sum())
    return metrics
