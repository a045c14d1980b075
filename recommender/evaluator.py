"""Ranking evaluation of any :class:`Recommender` against a held-out matrix.

Protocol (Microsoft Recommenders): score every item for each evaluated user, remove the items the user
interacted with in training, take the top ``k``, and count a hit for any held-out interaction. Users
without held-out items are skipped, because their recall and nDCG are undefined. Averages are over the
evaluated users.

:func:`evaluate_queries` is the same over *queries* (a history, side features and the held-out items to
find) scored by any function from histories to scores: a model's ``score_history`` or the served
ranker's ``score_batch``, so the benchmark can score the artifact the service loads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from recommender.metrics import auc_batch, ranking_metrics_batch
from recommender.models.base import InteractionData


class Scorer(Protocol):
    """Anything that scores rows of an :class:`InteractionData`."""

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray: ...


HistoryScorer = Callable[[sp.csr_matrix, np.ndarray | None], np.ndarray]


def evaluate_queries(
    score: HistoryScorer,
    history: sp.spmatrix,
    features: np.ndarray | None,
    target: sp.spmatrix,
    k: int = 10,
    item_mask: np.ndarray | None = None,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Ranking metrics of ``score(history, features)`` against ``target`` (one row per query).

    Items in a query's history (and outside ``item_mask``) are never recommended; queries without a
    target item are skipped. Returns ``ndcg@k``, ``map``, ``precision@k``, ``recall@k``, ``hr@k``,
    ``hr@1``, ``coverage`` and ``n_users`` (the number of queries).
    """
    hist = sp.csr_matrix(history)
    tgt = sp.csr_matrix(target)
    if hist.shape != tgt.shape:
        raise ValueError(f"history {hist.shape} and target {tgt.shape} must have the same shape")
    keep = np.flatnonzero(np.diff(tgt.indptr) > 0)
    if keep.size == 0:
        raise ValueError("no query to evaluate: every target row is empty")
    start = time.perf_counter()
    tops, firsts = [], []
    for lo in range(0, keep.size, batch_size):
        rows = keep[lo : lo + batch_size]
        feats = None if features is None else np.asarray(features)[rows]
        s = np.array(score(hist[rows], feats), dtype=np.float64)
        s = np.where(np.isfinite(s), s, -1e300)
        r, c = hist[rows].nonzero()
        s[r, c] = -np.inf
        if item_mask is not None:
            s[:, ~np.asarray(item_mask, dtype=bool)] = -np.inf
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
        tops.append(np.take_along_axis(part, order, axis=1))
        firsts.append(np.argmax(s, axis=1)[:, None])
    top = np.vstack(tops)
    relevant = tgt[keep]
    per_user = ranking_metrics_batch(top, relevant, k)
    first = ranking_metrics_batch(np.vstack(firsts), relevant, 1)
    n_catalogue = int(np.sum(item_mask)) if item_mask is not None else hist.shape[1]
    return {
        f"ndcg@{k}": float(per_user["ndcg"].mean()),
        "map": float(per_user["map"].mean()),
        f"precision@{k}": float(per_user["precision"].mean()),
        f"recall@{k}": float(per_user["recall"].mean()),
        f"hr@{k}": float(per_user["hr"].mean()),
        "hr@1": float(first["hr"].mean()),
        "coverage": float(len(np.unique(top)) / max(n_catalogue, 1)),
        "n_users": int(keep.size),
        "eval_s": time.perf_counter() - start,
    }


def _validate(train: InteractionData, test: sp.spmatrix) -> sp.csr_matrix:
    if not sp.issparse(test):
        raise TypeError(f"test must be a scipy sparse matrix, got {type(test).__name__}")
    if test.shape != train.interactions.shape:
        raise ValueError(
            f"test shape {test.shape} does not match train.interactions shape {train.interactions.shape}"
        )
    return sp.csr_matrix(test)


def top_k_items(
    model: Scorer,
    users: np.ndarray,
    data: InteractionData,
    k: int,
    item_mask: np.ndarray | None = None,
    exclude_seen: bool = True,
    batch_size: int = 1024,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Top-``k`` items per user with seen items (and items outside ``item_mask``) removed.

    Returns the (n_users, k) index matrix and the raw score batches (kept for AUC).
    """
    tops: list[np.ndarray] = []
    batches: list[np.ndarray] = []
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        scores = np.asarray(model.score(chunk, data), dtype=np.float64)
        if scores.shape != (len(chunk), data.n_items):
            raise ValueError(
                f"{type(model).__name__}.score returned shape {scores.shape}, "
                f"expected {(len(chunk), data.n_items)}"
            )
        batches.append(scores)
        masked = np.where(np.isfinite(scores), scores, -1e300)
        if exclude_seen:
            seen = data.interactions[chunk]
            r, c = seen.nonzero()
            masked[r, c] = -np.inf
        if item_mask is not None:
            masked[:, ~item_mask] = -np.inf
        kk = min(k, masked.shape[1])
        part = np.argpartition(-masked, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(masked, part, axis=1), axis=1, kind="stable")
        tops.append(np.take_along_axis(part, order, axis=1))
    top = np.vstack(tops) if tops else np.zeros((0, k), dtype=np.int64)
    return top, batches


def evaluate(
    model: Scorer,
    train: InteractionData,
    test: sp.spmatrix,
    k: int = 10,
    users: np.ndarray | None = None,
    item_mask: np.ndarray | None = None,
    compute_auc: bool = True,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Evaluate a fitted ``model`` on ``test`` (same shape as ``train.interactions``).

    ``users``: rows to evaluate (default: every row with at least one test item; rows without test items
    are dropped even if listed). ``item_mask``: boolean (n_items,) of recommendable items, e.g. items
    seen in training when the protocol only ranks known items. Returns ``ndcg@k``, ``map`` (sum of
    precisions at hits / number of relevant items, the benchmark's MAP), ``map@k`` (divided by
    ``min(k, relevant)``), ``precision@k``, ``recall@k``, ``hr@k``, ``auc`` (per-user, averaged),
    ``coverage`` (share of recommendable items appearing in some top-k) and ``n_users``.
    """
    test_csr = _validate(train, test)
    if item_mask is not None:
        item_mask = np.asarray(item_mask, dtype=bool)
        if item_mask.shape != (train.n_items,):
            raise ValueError(f"item_mask must have shape ({train.n_items},), got {item_mask.shape}")
    has_test = np.diff(test_csr.indptr) > 0
    if users is None:
        eval_users = np.flatnonzero(has_test)
    else:
        eval_users = np.asarray(users, dtype=np.int64)
        if eval_users.size and (eval_users.min() < 0 or eval_users.max() >= train.n_users):
            raise ValueError(f"users must be row indices in [0, {train.n_users})")
        eval_users = eval_users[has_test[eval_users]]
    if eval_users.size == 0:
        raise ValueError("no user to evaluate: every selected user has an empty test row")

    start = time.perf_counter()
    top, score_batches = top_k_items(model, eval_users, train, k, item_mask, batch_size=batch_size)
    relevant = test_csr[eval_users]
    per_user = ranking_metrics_batch(top, relevant, k)
    n_catalogue = int(item_mask.sum()) if item_mask is not None else train.n_items
    result: dict[str, Any] = {
        f"ndcg@{k}": float(per_user["ndcg"].mean()),
        "map": float(per_user["map"].mean()),
        f"map@{k}": float(per_user["map_min_k"].mean()),
        f"precision@{k}": float(per_user["precision"].mean()),
        f"recall@{k}": float(per_user["recall"].mean()),
        f"hr@{k}": float(per_user["hr"].mean()),
        "coverage": float(len(np.unique(top)) / max(n_catalogue, 1)),
        "n_users": len(eval_users),
    }
    if compute_auc:
        aucs: list[np.ndarray] = []
        offset = 0
        for scores in score_batches:
            rows = eval_users[offset : offset + len(scores)]
            cand = np.ones(scores.shape, dtype=bool)
            seen_r, seen_c = train.interactions[rows].nonzero()
            cand[seen_r, seen_c] = False
            if item_mask is not None:
                cand[:, ~item_mask] = False
            aucs.append(auc_batch(scores, relevant[offset : offset + len(scores)], cand))
            offset += len(scores)
        values = np.concatenate(aucs)
        result["auc"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    result["eval_s"] = time.perf_counter() - start
    return result
