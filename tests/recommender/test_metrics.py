"""Ranking metrics against values computed by hand on tiny examples (arithmetic in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.metrics import (
    auc,
    auc_batch,
    average_precision_at_k,
    catalogue_coverage,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics_batch,
    recall_at_k,
)

# One user: ranked list [3, 1, 4, 5, 9], relevant {1, 5, 7}. Hits at ranks 2 and 4.
RANKED = [3, 1, 4, 5, 9]
RELEVANT = {1, 5, 7}


def test_precision_divides_hits_by_k() -> None:
    # top-5 holds 2 relevant items -> 2/5
    assert precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(0.4)
    # top-2 = [3, 1] -> 1 hit / 2
    assert precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(0.5)
    # k larger than the list still divides by k (Recommenders/Spark convention): 2/10
    assert precision_at_k(RANKED, RELEVANT, 10) == pytest.approx(0.2)


def test_recall_divides_hits_by_relevant_count() -> None:
    # 2 of the 3 relevant items are in the top 5 -> 2/3
    assert recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)
    # top-1 = [3] -> 0/3
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKED, set(), 5) == 0.0


def test_hit_rate() -> None:
    assert hit_rate_at_k(RANKED, RELEVANT, 1) == 0.0  # [3] misses
    assert hit_rate_at_k(RANKED, RELEVANT, 2) == 1.0  # [3, 1] hits


def test_ndcg_by_hand() -> None:
    # DCG@5 = 1/ln(1+2) + 1/ln(1+4) = 1/ln3 + 1/ln5 = 0.910239 + 0.621335 = 1.531574
    # IDCG@5 with min(5, 3) = 3 relevant: 1/ln2 + 1/ln3 + 1/ln4 = 1.442695 + 0.910239 + 0.721348 = 3.074282
    # nDCG = 1.531574 / 3.074282 = 0.498190
    expected = (1 / math.log(3) + 1 / math.log(5)) / (1 / math.log(2) + 1 / math.log(3) + 1 / math.log(4))
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(expected)
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(0.498190, abs=1e-6)
    # k = 2: DCG = 1/ln3 = 0.910239; IDCG over min(2, 3) = 2: 1/ln2 + 1/ln3 = 2.352934 -> 0.386852
    assert ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx(0.386852, abs=1e-6)
    # a perfect ranking scores 1
    assert ndcg_at_k([1, 5, 7, 0], RELEVANT, 3) == pytest.approx(1.0)


def test_average_precision_both_denominators() -> None:
    # precision at the hit ranks: rank 2 -> 1/2, rank 4 -> 2/4; sum = 1.0
    # Recommenders' `map` (benchmark MAP column): divide by |relevant| = 3 -> 1/3
    assert average_precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(1 / 3)
    # newer `map_at_k`: divide by min(k, |relevant|) = min(5, 3) = 3 -> same here
    assert average_precision_at_k(RANKED, RELEVANT, 5, denominator="min_k") == pytest.approx(1 / 3)
    # k = 2: only the rank-2 hit counts -> 1/2; "relevant" -> 0.5/3; "min_k" -> 0.5/min(2, 3) = 0.25
    assert average_precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(0.5 / 3)
    assert average_precision_at_k(RANKED, RELEVANT, 2, denominator="min_k") == pytest.approx(0.25)


def test_auc_counts_pairs_and_half_ties() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.5, 0.3])
    # relevant {0, 2}; irrelevant {1, 3, 4}. Pairs (pos, neg):
    # 0 beats 1, 3, 4 -> 3; 2 beats 1 and 4, ties 3 (0.5) -> 2.5. Total 5.5 of 2*3 = 6 -> 0.916667
    assert auc(scores, {0, 2}) == pytest.approx(5.5 / 6)
    # restricted to candidates {0, 1, 2}: pairs (0,1) win, (2,1) win -> 1.0
    assert auc(scores, {0, 2}, candidates=np.array([True, True, True, False, False])) == pytest.approx(1.0)
    assert math.isnan(auc(scores, set()))


def test_catalogue_coverage() -> None:
    # items {1, 2, 3, 5} appear in some list; catalogue of 10 -> 0.4
    assert catalogue_coverage([[1, 2], [2, 3], [5]], 10) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="n_items"):
        catalogue_coverage([[1]], 0)


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        precision_at_k(RANKED, RELEVANT, 0)


def test_batch_metrics_match_the_per_user_functions() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, k = 40, 30, 5
    relevant = sp.random(n_users, n_items, density=0.15, format="csr", random_state=1)
    relevant.data[:] = 1.0
    top = np.vstack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    batch = ranking_metrics_batch(top, relevant, k)
    for u in range(n_users):
        rel = set(relevant[u].indices.tolist())
        if not rel:
            assert batch["ndcg"][u] == 0.0
            continue
        ranked = top[u].tolist()
        assert batch["precision"][u] == pytest.approx(precision_at_k(ranked, rel, k))
        assert batch["recall"][u] == pytest.approx(recall_at_k(ranked, rel, k))
        assert batch["hr"][u] == pytest.approx(hit_rate_at_k(ranked, rel, k))
        assert batch["ndcg"][u] == pytest.approx(ndcg_at_k(ranked, rel, k))
        assert batch["map"][u] == pytest.approx(average_precision_at_k(ranked, rel, k))
        assert batch["map_min_k"][u] == pytest.approx(average_precision_at_k(ranked, rel, k, "min_k"))


def test_batch_auc_matches_the_per_user_function() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(6, 12)).round(1)  # rounding creates ties
    relevant = sp.csr_matrix((rng.random((6, 12)) < 0.3).astype(np.float32))
    cand = rng.random((6, 12)) < 0.8
    out = auc_batch(scores, relevant, cand)
    for u in range(6):
        expected = auc(scores[u], set(relevant[u].indices.tolist()), candidates=cand[u])
        if math.isnan(expected):
            assert math.isnan(out[u])
        else:
            assert out[u] == pytest.approx(expected)


def test_batch_rejects_mismatched_rows() -> None:
    with pytest.raises(ValueError, match="rows"):
        ranking_metrics_batch(np.zeros((3, 2), dtype=int), sp.csr_matrix((4, 5)), 2)


def test_a_repeated_item_counts_once_at_its_first_rank() -> None:
    # [1, 1, 5, 3] deduplicates to [1, 5, 3]: top-3 hits at ranks 1 and 2 of relevant {1, 5, 7}.
    ranked = [1, 1, 5, 3]
    # DCG = 1/ln2 + 1/ln3 = 1.442695 + 0.910239 = 2.352934
    # IDCG over min(3, 3) = 3: 1/ln2 + 1/ln3 + 1/ln4 = 3.074282 -> nDCG = 0.765361
    # (counting the repeat would give hits at ranks 1, 2, 3 and nDCG = 1.0)
    assert ndcg_at_k(ranked, RELEVANT, 3) == pytest.approx(0.765361, abs=1e-6)
    assert precision_at_k(ranked, RELEVANT, 3) == pytest.approx(2 / 3)  # not 3/3
    assert recall_at_k(ranked, RELEVANT, 3) == pytest.approx(2 / 3)  # not 3/3
    # precision at the hit ranks: 1/1 and 2/2 -> sum 2, / 3 relevant
    assert average_precision_at_k(ranked, RELEVANT, 3) == pytest.approx(2 / 3)
    # a list that is all one relevant item: one hit at rank 1; IDCG over min(3, 2) = 2 ranks
    # nDCG = (1/ln2) / (1/ln2 + 1/ln3) = 1.442695 / 2.352934 = 0.613147
    assert ndcg_at_k([2, 2, 2], {2, 4}, 3) == pytest.approx(0.613147, abs=1e-6)
    assert precision_at_k([2, 2, 2], {2, 4}, 3) == pytest.approx(1 / 3)


def test_batch_metrics_deduplicate_rows_like_the_per_user_functions() -> None:
    top = np.array([[1, 1, 5, 3], [2, 2, 2, 2], [0, 6, 0, 7]])
    relevant = sp.csr_matrix((np.ones(6), ([0, 0, 0, 1, 1, 2], [1, 5, 7, 2, 4, 7])), shape=(3, 8))
    batch = ranking_metrics_batch(top, relevant, 3)
    # row 0 as above; row 1 -> [2]: 0.613147; row 2 -> [0, 6, 7]: one hit at rank 3 of {7}:
    # DCG = 1/ln4 = 0.721348, IDCG = 1/ln2 = 1.442695 -> 0.5
    np.testing.assert_allclose(batch["ndcg"], [0.765361, 0.613147, 0.5], atol=1e-6)
    np.testing.assert_allclose(batch["precision"], [2 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(batch["recall"], [2 / 3, 1 / 2, 1.0])
    rng = np.random.default_rng(3)
    rand_top = rng.integers(0, 8, size=(30, 6))  # many repeats
    rand_rel = sp.csr_matrix((rng.random((30, 8)) < 0.3).astype(np.float32))
    rb = ranking_metrics_batch(rand_top, rand_rel, 4)
    for u in range(30):
        rel = set(rand_rel[u].indices.tolist())
        if rel:
            assert rb["ndcg"][u] == pytest.approx(ndcg_at_k(rand_top[u].tolist(), rel, 4))
            assert rb["map"][u] == pytest.approx(average_precision_at_k(rand_top[u].tolist(), rel, 4))
            assert rb["recall"][u] == pytest.approx(recall_at_k(rand_top[u].tolist(), rel, 4))
