"""Model selection on validation data carved out of the training data, and the served training path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.models.base import InteractionData
from recommender.models.ease import DLAE
from recommender.models.popularity import Popularity
from recommender.models.ridge_map import RidgeMap
from recommender.serving import ProductRanker
from recommender.training import SERVED, Candidate, default_candidates, fit_served, train_served
from recommender.tuning import (
    HoldoutSplitter,
    LeaveOneOutSplitter,
    ValidationFold,
    blend_weights,
    grid_search,
    leave_one_out_queries,
    parse_metric,
    per_query,
    simplex,
)
from tests.recommender.toy_world import N_ITEMS, N_WARM, make_toy


def test_holdout_hides_a_share_of_warm_histories_and_whole_cold_ones() -> None:
    data = make_toy().data
    (fold,) = HoldoutSplitter(fraction=0.5, users=0.5, cold_share=0.5, seed=3).folds(data)
    x = data.interactions
    n_eligible = int((np.diff(x.indptr) >= 2).sum())
    n_queries = round(0.5 * n_eligible)
    assert fold.history.shape == fold.target.shape == (n_queries, N_ITEMS)
    cold = fold.cold
    assert cold.sum() == round(0.5 * n_queries)
    # warm queries keep half their items (rounded) and must find the other half; nothing is in both
    assert fold.history.multiply(fold.target).nnz == 0
    kept, hidden = np.diff(fold.history.indptr)[~cold], np.diff(fold.target.indptr)[~cold]
    np.testing.assert_array_equal(hidden, [max(1, round(0.5 * n)) for n in kept + hidden])
    # cold validation users are out of the fit set; warm ones stay, without their hidden items
    assert fold.fit.n_users == data.n_users - cold.sum()
    assert fold.fit.interactions.nnz == x.nnz - fold.target.nnz
    assert fold.features is not None and fold.features.shape == (n_queries, data.user_features.shape[1])
    with pytest.raises(ValueError, match="fraction"):
        HoldoutSplitter(fraction=1.0)


def test_leave_one_out_queries_hide_each_held_item_in_turn() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=np.float32))
    data = InteractionData(x, user_features=np.arange(8, dtype=np.float32).reshape(4, 2))
    fold = leave_one_out_queries(data, np.array([0, 3]))
    # user 0 holds {0, 1}: two queries; user 3 holds {0, 1, 2}: three
    assert fold.history.shape[0] == 5
    np.testing.assert_array_equal(fold.target.toarray().sum(axis=1), np.ones(5))
    np.testing.assert_array_equal((fold.history + fold.target).toarray(), x.toarray()[[0, 0, 3, 3, 3]])
    assert fold.fit.n_users == 2 and fold.fit.interactions.nnz == 3
    np.testing.assert_array_equal(fold.features, data.user_features[[0, 0, 3, 3, 3]])
    (drawn,) = LeaveOneOutSplitter(users=0.5, seed=0).folds(data)
    assert drawn.fit.n_users == 4 - round(0.5 * 3)  # 3 users hold >= 2 items; half of them are drawn


def test_per_query_metrics_by_hand() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.2, 0.3, 0.4, 0.1]])
    history = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 0, 0]], dtype=np.float32))
    # user 0: item 0 is held, ranking 1, 3, 2: the target is second; user 1: 2, 1, 0, 3: third
    np.testing.assert_allclose(per_query(scores, history, target, "hr@1"), [0.0, 0.0])
    np.testing.assert_allclose(per_query(scores, history, target, "hr@2"), [1.0, 0.0])
    np.testing.assert_allclose(per_query(scores, history, target, "ndcg@10"), [1 / math.log2(3), 0.5])
    assert parse_metric("ndcg@10") == ("ndcg", 10)
    for bad in ("auc", "ndcg@0", "ndcg"):
        with pytest.raises(ValueError, match="metric"):
            parse_metric(bad)


def test_simplex_lists_every_weight_vector_once() -> None:
    vectors = simplex(3, 0.5)
    assert sorted(vectors) == sorted(
        [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)]
    )
    assert all(math.isclose(sum(v), 1.0) for v in simplex(4, 0.1))


def test_blend_weights_are_chosen_per_route_on_validation() -> None:
    # two queries: a warm one that only member "a" ranks right, a cold one that only "b" ranks right
    history = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    fold = ValidationFold(InteractionData(sp.csr_matrix((1, 4))), history, None, target)
    a = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    choice = blend_weights({"a": [a], "b": [b]}, [fold], "hr@1", step=0.5)
    assert choice.warm == {"a": 1.0, "b": 0.0} and choice.cold == {"a": 0.0, "b": 1.0}
    assert choice.warm_value == choice.cold_value == 1.0


def test_grid_search_keeps_the_best_setting_and_the_first_of_equals() -> None:
    data = make_toy().data
    folds = HoldoutSplitter(fraction=0.3, users=0.5, seed=0).folds(data)

    def make(kind: str) -> Popularity | DLAE:
        return Popularity() if kind == "popularity" else DLAE(lam=5.0, dropout=0.5)

    res = grid_search(make, [{"kind": "popularity"}, {"kind": "dlae"}], folds, "ndcg@10")
    assert res.params == {"kind": "dlae"} and len(res.tried) == 2
    assert res.value == max(v for _, v in res.tried)
    same = grid_search(lambda **kw: Popularity(), [{}, {}], folds, "ndcg@10")
    assert same.tried[0][1] == same.tried[1][1] and same.params == {}


def test_the_served_blend_is_tuned_on_validation_refitted_and_saved(tmp_path: Path) -> None:
    toy = make_toy()
    data = toy.data
    splitter = HoldoutSplitter(fraction=0.3, users=0.5, cold_share=0.5, min_items=2, seed=0)
    candidates = {
        "dlae": Candidate(DLAE, ({"lam": 5.0, "dropout": 0.5, "alpha": 0.0},)),
        "ridge_map": Candidate(RidgeMap, ({"ridge": 1.0}, {"ridge": 10.0})),
        "popularity": Candidate(Popularity),
    }
    fit = fit_served(data, splitter, candidates)
    assert set(fit.members) == set(candidates) and fit.without_torch is None
    # every single member is one of the weight vectors tried, so on each route's validation queries the
    # chosen blend is at least as good as the best member
    (fold,) = splitter.folds(data)
    for mask, value in ((~fold.cold, fit.choice.warm_value), (fold.cold, fit.choice.cold_value)):
        assert value is not None and mask.any()
        best = max(
            per_query(res.scores[0][mask], fold.history[mask], fold.target[mask], "ndcg@10").mean()
            for res in fit.tuned.values()
        )
        assert value >= best - 1e-12
    # the item-item model knows nothing about users without a history: the cold route never uses it
    assert fit.choice.cold["dlae"] == 0.0
    report = fit.report()
    assert set(report["families"]) == set(candidates) and report["weights"]["cold"]
    path, again = train_served(data, tmp_path, splitter, candidates)
    ranker = ProductRanker.load(path)
    assert ranker.metadata.model_name == SERVED == "hybrid"
    assert ranker.metadata.params["selection"]["families"].keys() == report["families"].keys()
    users = np.array([0, 1, N_WARM, N_WARM + 1])
    np.testing.assert_allclose(
        ranker.score_batch(data.interactions[users], data.user_features[users]),
        again.model.score(users, data),
        rtol=1e-6,
        atol=1e-6,
    )


def test_default_candidates_follow_the_data() -> None:
    data = make_toy().data
    warm = default_candidates(InteractionData(data.interactions), "warm", torch=False)
    assert "ridge_map" not in warm and "dlae" in warm and "denoising_net" not in warm
    cold = default_candidates(data, "cold", epochs=3)
    assert "dlae" not in cold and {"ridge_map", "denoising_net"} <= set(cold)
    assert cold["denoising_net"].torch and cold["denoising_net"].grid[0]["epochs"] == 3
    nxt = default_candidates(data, "next")
    assert nxt["denoising_net"].grid[0]["objective"] == "hide_one" and "item_logistic" in nxt
