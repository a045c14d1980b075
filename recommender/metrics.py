"""Ranking metrics as pure functions, with the Microsoft Recommenders semantics.

Two layers:

* per-user functions over one ranked list and a set of relevant items (``precision_at_k``,
  ``recall_at_k``, ``hit_rate_at_k``, ``ndcg_at_k``, ``average_precision_at_k``, ``auc``), easy to check
  by hand, and ``catalogue_coverage`` over many lists;
* ``ranking_metrics_batch``, the vectorised form the evaluator uses on a (users x k) matrix of top-k
  item indices and a CSR matrix of held-out items. Tests check both layers agree.

Conventions (identical to ``recommenders.evaluation.python_evaluation``):

* relevance is binary: an item is relevant if it is in the held-out set;
* Precision@K divides the number of hits in the top ``k`` by ``k`` (not by the list length);
* Recall@K divides the hits by the number of relevant items;
* nDCG@K uses gain 1 and discount ``1 / log(1 + rank)`` (rank from 1), normalised by the ideal DCG of
  ``min(k, |relevant|)`` hits; the log base cancels;
* MAP: the benchmark's "MAP" column is Recommenders' ``map`` (the ``map_at_k`` of releases before 1.2):
  the sum of precision at each hit rank within the top ``k``, divided by the number of relevant items.
  ``average_precision_at_k(..., denominator="min_k")`` gives the newer ``map_at_k`` that divides by
  ``min(k, |relevant|)`` instead;
* HR@K is 1 if at least one relevant item is in the top ``k``;
* AUC is the per-user probability that a relevant candidate outranks an irrelevant one (ties count 1/2);
  averaged over users it is the "group AUC", which suits ranking better than one pooled AUC;
* a ranked list that names an item twice counts it once: every list is deduplicated keeping the first
  occurrence of each item (later repeats are dropped and the items after them move up) before the top
  ``k`` is taken, so no metric can exceed its range or reward a repeated hit. The batch form does the
  same row by row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

MapDenominator = Literal["relevant", "min_k"]


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def dedupe_ranked(ranked: Iterable[int]) -> list[int]:
    """The ranked list with repeated items removed, keeping each item's first (best) position."""
    seen: set[int] = set()
    out: list[int] = []
    for item in ranked:
        i = int(item)
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _hits(ranked: Sequence[int], relevant: Collection[int], k: int) -> np.ndarray:
    """Hit indicators of the top ``k`` of the deduplicated list (see the module notes)."""
    _check_k(k)
    rel = set(int(r) for r in relevant)
    return np.array([item in rel for item in dedupe_ranked(ranked)[:k]], dtype=np.float64)


def precision_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Hits in the top ``k`` divided by ``k``."""
    return float(_hits(ranked, relevant, k).sum() / k)


def recall_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Hits in the top ``k`` divided by the number of relevant items (0 when there are none)."""
    n_rel = len(set(relevant))
    return 0.0 if n_rel == 0 else float(_hits(ranked, relevant, k).sum() / n_rel)


def hit_rate_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1.0 if any relevant item is in the top ``k``, else 0.0."""
    return float(_hits(ranked, relevant, k).any())


def ndcg_at_k(ranked: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Binary nDCG@k with discount ``1/log(1+rank)``; 0 when nothing is relevant.

    A repeated item counts once, at its first rank (the list is deduplicated before the cut at ``k``).
    """
    hits = _hits(ranked, relevant, k)
    n_rel = len(set(relevant))
    if n_rel == 0:
        return 0.0
    discounts = 1.0 / np.log(np.arange(2, k + 2, dtype=np.float64))
    dcg = float((hits * discounts[: len(hits)]).sum())
    idcg = float(discounts[: min(k, n_rel)].sum())
    return dcg / idcg


def average_precision_at_k(
    ranked: Sequence[int], relevant: Collection[int], k: int, denominator: MapDenominator = "relevant"
) -> float:
    """Sum of precision@rank over hit ranks within the top ``k``, divided by ``|relevant|``.

    ``denominator="min_k"`` divides by ``min(k, |relevant|)`` (Recommenders' newer ``map_at_k``).
    """
    hits = _hits(ranked, relevant, k)
    n_rel = len(set(relevant))
    if n_rel == 0:
        return 0.0
    if denominator not in ("relevant", "min_k"):
        raise ValueError(f"denominator must be 'relevant' or 'min_k', got {denominator!r}")
    precisions = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    total = float((precisions * hits).sum())
    return total / (n_rel if denominator == "relevant" else min(k, n_rel))


def auc(scores: np.ndarray, relevant: Collection[int], candidates: np.ndarray | None = None) -> float:
    """Probability that a relevant candidate scores above an irrelevant one (ties count 1/2).

    ``scores`` are the model's scores over all items; ``candidates`` (boolean mask or index array)
    restricts the comparison, e.g. to items the user has not seen in training. NaN when either class is
    empty, because AUC is undefined there.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if candidates is None:
        cand = np.arange(len(scores))
    else:
        cand_arr = np.asarray(candidates)
        cand = np.flatnonzero(cand_arr) if cand_arr.dtype == bool else cand_arr.astype(np.int64)
    is_pos = np.isin(cand, np.fromiter((int(r) for r in relevant), dtype=np.int64))
    n_pos = int(is_pos.sum())
    n_neg = len(cand) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores[cand])  # average ranks handle ties as 1/2
    return float((ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def catalogue_coverage(recommendations: Iterable[Sequence[int]], n_items: int) -> float:
    """Share of the catalogue that appears in at least one recommendation list."""
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items!r}")
    seen: set[int] = set()
    for rec in recommendations:
        seen.update(int(i) for i in rec)
    return len(seen) / n_items


def ranking_metrics_batch(top_k: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """Per-user metrics for many users at once.

    ``top_k``: (n_users, >=k) item indices, best first. ``relevant``: CSR (n_users, n_items), nonzero =
    relevant, row ``u`` belonging to ``top_k[u]``. A row that repeats an item is deduplicated keeping
    first occurrences (later entries move up; a row left shorter than ``k`` simply has fewer hits), as in
    the per-user functions. Returns arrays of length n_users for ``precision``,
    ``recall``, ``hr``, ``ndcg``, ``map`` (denominator ``|relevant|``), ``map_min_k`` and ``n_relevant``.
    Users without relevant items get 0 everywhere; callers decide whether to skip them.
    """
    _check_k(k)
    top_k = np.asarray(top_k, dtype=np.int64)
    if top_k.ndim != 2 or top_k.shape[0] != relevant.shape[0]:
        raise ValueError(
            f"top_k has {top_k.shape[0]} rows but relevant has {relevant.shape[0]}; they must match"
        )
    top_k, valid = _dedupe_rows(top_k)
    top_k, valid = top_k[:, :k], valid[:, :k]
    rel = sp.csr_matrix(relevant)
    n_users, width = top_k.shape
    rows = np.repeat(np.arange(n_users), width)
    found = np.asarray(rel[rows, np.where(valid, top_k, 0).ravel()]).reshape(n_users, width) != 0
    hits = (found & valid).astype(np.float64)
    n_rel = np.diff(rel.indptr).astype(np.float64)
    n_hits = hits.sum(axis=1)
    safe = np.maximum(n_rel, 1.0)
    discounts = 1.0 / np.log(np.arange(2, k + 2, dtype=np.float64))
    dcg = (hits * discounts[:width]).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(n_rel, k).astype(np.int64)]
    prec_at_rank = np.cumsum(hits, axis=1) / np.arange(1, width + 1)
    ap_sum = (prec_at_rank * hits).sum(axis=1)
    has = n_rel > 0
    return {
        "precision": np.where(has, n_hits / k, 0.0),
        "recall": np.where(has, n_hits / safe, 0.0),
        "hr": np.where(has, (n_hits > 0).astype(np.float64), 0.0),
        "ndcg": np.where(has, dcg / np.where(idcg > 0, idcg, 1.0), 0.0),
        "map": np.where(has, ap_sum / safe, 0.0),
        "map_min_k": np.where(has, ap_sum / np.maximum(np.minimum(n_rel, k), 1.0), 0.0),
        "n_relevant": n_rel,
    }


def _dedupe_rows(top_k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with repeated items removed (first occurrences kept, the rest shifted left) and the mask of
    real entries; the padding left at the end of a shortened row is marked invalid."""
    width = top_k.shape[1]
    if width < 2:
        return top_k, np.ones(top_k.shape, dtype=bool)
    order = np.argsort(top_k, axis=1, kind="stable")
    sorted_items = np.take_along_axis(top_k, order, axis=1)
    repeat_sorted = np.zeros(top_k.shape, dtype=bool)
    repeat_sorted[:, 1:] = sorted_items[:, 1:] == sorted_items[:, :-1]
    if not repeat_sorted.any():
        return top_k, np.ones(top_k.shape, dtype=bool)
    first = np.ones(top_k.shape, dtype=bool)
    np.put_along_axis(first, order, ~repeat_sorted, axis=1)  # stable sort: the first occurrence is kept
    # move the kept entries to the front of their row, keeping their order
    pos = np.argsort(~first, axis=1, kind="stable")
    packed = np.take_along_axis(top_k, pos, axis=1)
    valid = np.arange(width)[None, :] < first.sum(axis=1, keepdims=True)
    return packed, valid


def auc_batch(scores: np.ndarray, relevant: sp.csr_matrix, candidates: np.ndarray) -> np.ndarray:
    """Per-user AUC over candidate items: ``scores`` and boolean ``candidates`` are (n_users, n_items).

    Users whose candidates are all relevant or all irrelevant get NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    cand = np.asarray(candidates, dtype=bool)
    if scores.shape != cand.shape or scores.shape != relevant.shape:
        raise ValueError(
            f"scores {scores.shape}, candidates {cand.shape} and relevant {relevant.shape} must match"
        )
    pos = (relevant.toarray() != 0) & cand
    # Non-candidates go below everything; their ranks are subtracted out through n_excluded.
    masked = np.where(cand, scores, -np.inf)
    ranks = rankdata(masked, axis=1)
    n_excluded = (~cand).sum(axis=1)
    n_pos = pos.sum(axis=1)
    n_neg = cand.sum(axis=1) - n_pos
    pos_rank_sum = np.where(pos, ranks - n_excluded[:, None], 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (pos_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return np.asarray(out, dtype=np.float64)
