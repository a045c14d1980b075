"""Evaluator semantics, the faithful split, and the evaluation protocols on slices of real data.

MovieLens-100k is downloaded at run time (recbole wheel); those tests skip with the reason when the
download is impossible. The full protocols are marked ``slow``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender.data import movielens
from recommender.data.caravan import PRODUCTS, caravan_products, leave_one_product_out
from recommender.evaluator import evaluate, evaluate_queries
from recommender.models.base import InteractionData


class FixedScores:
    """Returns a fixed score matrix: lets the evaluator be checked by hand."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.asarray(scores, dtype=np.float32)

    def score(self, users: np.ndarray, data: InteractionData) -> np.ndarray:
        return self.scores[np.asarray(users)]


def test_evaluator_follows_the_recommenders_protocol_by_hand() -> None:
    # 3 users x 6 items. User 0 saw item 0 in training; user 2 has no test item (skipped).
    train = InteractionData(
        sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0]]))
    )
    test = sp.csr_matrix(np.array([[0, 0, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]))
    scores = np.array(
        [
            [9, 8, 7, 6, 5, 4],  # seen item 0 removed -> top-2 = [1, 2]; hit at rank 2
            [1, 2, 3, 4, 5, 6],  # seen item 5 removed -> top-2 = [4, 3]; no hit
            [6, 5, 4, 3, 2, 1],
        ]
    )
    res = evaluate(FixedScores(scores), train, test, k=2)
    assert res["n_users"] == 2
    # user 0: DCG = 1/ln3; IDCG over min(2, 2 relevant) = 1/ln2 + 1/ln3 -> 0.386852; user 1: 0
    assert res["ndcg@2"] == pytest.approx((1 / math.log(3)) / (1 / math.log(2) + 1 / math.log(3)) / 2)
    # precision: (1/2 + 0) / 2 = 0.25; recall: (1/2 + 0/1) / 2 = 0.25; hr: (1 + 0) / 2
    assert res["precision@2"] == pytest.approx(0.25)
    assert res["recall@2"] == pytest.approx(0.25)
    assert res["hr@2"] == pytest.approx(0.5)
    # MAP: user 0 has precision 1/2 at its hit rank, / 2 relevant = 0.25; user 1: 0 -> 0.125
    assert res["map"] == pytest.approx(0.125)
    # coverage: items {1, 2, 4, 3} of 6
    assert res["coverage"] == pytest.approx(4 / 6)
    # AUC over unseen items. user 0: positives {2, 4} vs negatives {1, 3, 5}: 2 beats 3, 5; 4 beats 5 -> 3/6
    # user 1: positive {0} (score 1) vs {1, 2, 3, 4} -> 0/4. Mean 0.25
    assert res["auc"] == pytest.approx(0.25)
    # restricting the recommendable items changes the lists: without item 1, user 0's top-2 = [2, 3]
    mask = np.array([True, False, True, True, True, True])
    masked = evaluate(FixedScores(scores), train, test, k=2, item_mask=mask)
    assert masked["precision@2"] == pytest.approx(0.25)  # user 0: [2, 3] -> 1 hit; user 1: [4, 3] -> 0
    # user 0 now hits at rank 1: DCG = 1/ln2, IDCG = 1/ln2 + 1/ln3 -> 0.613147; user 1: 0 -> mean 0.306574
    expected_user0 = (1 / math.log(2)) / (1 / math.log(2) + 1 / math.log(3))
    assert masked["ndcg@2"] == pytest.approx(expected_user0 / 2)


def test_queries_are_evaluated_like_rows_by_hand() -> None:
    # the same three users as queries: a history, no features, the held-out items; scores by row order
    history = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0]]))
    target = sp.csr_matrix(np.array([[0, 0, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]))
    scores = np.array([[9, 8, 7, 6, 5, 4], [1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], dtype=np.float64)

    def score(hist: sp.csr_matrix, feats: np.ndarray | None) -> np.ndarray:
        # only the queries with a target item are scored: the first two
        assert feats is None and (hist != history[:2]).nnz == 0
        return scores[:2]

    res = evaluate_queries(score, history, None, target, k=2)
    assert res["n_users"] == 2  # the query without a target item is skipped
    assert res["ndcg@2"] == pytest.approx((1 / math.log(3)) / (1 / math.log(2) + 1 / math.log(3)) / 2)
    assert res["precision@2"] == pytest.approx(0.25) and res["hr@2"] == pytest.approx(0.5)
    # hr@1: user 0's first unseen item is 1 (not relevant), user 1's is 4 (not relevant)
    assert res["hr@1"] == 0.0
    assert res["map"] == pytest.approx(0.125)
    with pytest.raises(ValueError, match="same shape"):
        evaluate_queries(score, history, None, target[:2], k=2)


def test_evaluator_rejects_bad_inputs() -> None:
    train = InteractionData(sp.csr_matrix(np.eye(3)))
    model = FixedScores(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shape"):
        evaluate(model, train, sp.csr_matrix((3, 4)))
    with pytest.raises(TypeError, match="sparse"):
        evaluate(model, train, np.zeros((3, 3)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no user to evaluate"):
        evaluate(model, train, sp.csr_matrix((3, 3)))
    with pytest.raises(ValueError, match="item_mask"):
        evaluate(model, train, sp.csr_matrix(np.eye(3)), item_mask=np.ones(2, dtype=bool))


def _reference_stratified(frame: pd.DataFrame, ratio: float, seed: int, by: str) -> set[int]:
    """An independent, loop-based statement of the Recommenders rule: per group, order the rows by the
    random number drawn for them in file order; the first ``round(ratio * n)`` of the group's ``n`` rows
    train (Python's ``round``, half to even, as Recommenders cuts each group)."""
    rand = np.random.RandomState(seed).rand(len(frame))
    train_rows: set[int] = set()
    for _, rows in frame.groupby(by).groups.items():
        rows = np.asarray(rows)
        order = rows[np.argsort(rand[rows], kind="stable")]
        train_rows.update(int(r) for r in order[: round(ratio * len(order))])
    return train_rows


@pytest.mark.parametrize("by", ["user", "item"])
def test_stratified_split_matches_an_independent_statement_of_the_rule(by: str) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"userID": rng.integers(0, 30, 400), "itemID": rng.integers(0, 25, 400)})
    train, test = movielens.python_stratified_split(frame, ratio=0.75, filter_by=by, seed=42)
    col = "userID" if by == "user" else "itemID"
    assert set(train.index) == _reference_stratified(frame, 0.75, 42, col)
    assert set(train.index) | set(test.index) == set(frame.index)
    assert not set(train.index) & set(test.index)
    # the seed fixes the split
    again, _ = movielens.python_stratified_split(frame, ratio=0.75, filter_by=by, seed=42)
    assert set(again.index) == set(train.index)


def test_stratified_split_keeps_round_ratio_n_rows_per_group() -> None:
    # groups of 1..8 rows; round(0.75 * n) half to even: n=1 -> 1 (0.75), n=2 -> 2 (1.5), n=3 -> 2 (2.25),
    # n=4 -> 3, n=5 -> 4 (3.75), n=6 -> 4 (4.5), n=7 -> 5 (5.25), n=8 -> 6
    expected = {1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 6: 4, 7: 5, 8: 6}
    frame = pd.DataFrame(
        {
            "userID": np.arange(36),
            "itemID": np.concatenate([np.full(n, n) for n in range(1, 9)]),
        }
    )
    train, _ = movielens.python_stratified_split(frame, ratio=0.75, filter_by="item", seed=3)
    assert train.groupby("itemID").size().to_dict() == expected


def test_stratified_split_validates_arguments() -> None:
    frame = pd.DataFrame({"userID": [1, 2], "itemID": [1, 2]})
    with pytest.raises(ValueError, match="filter_by"):
        movielens.python_stratified_split(frame, filter_by="movie")
    with pytest.raises(ValueError, match="ratio"):
        movielens.python_stratified_split(frame, ratio=1.5)
    with pytest.raises(ValueError, match="min_rating"):
        movielens.python_stratified_split(frame, min_rating=0)
    with pytest.raises(ValueError, match="itemID"):
        movielens.python_stratified_split(frame.rename(columns={"itemID": "movie"}))


# ---------------------------------------------------------------------------------------- caravan (real)
def test_caravan_islp_propensity_matches_the_published_lab() -> None:
    from recommender.evaluation.caravan import islp_propensity

    res = islp_propensity()
    # ISLP chapter 4 lab, cut-off 0.25: 29 predicted buyers, 9 of them true
    assert res["predicted_buyers"] == 29
    assert res["true_buyers"] == 9
    assert res["precision"] == pytest.approx(9 / 29)
    assert res["test_size"] == 1000


def test_caravan_leave_one_product_out_hides_exactly_one_owned_product() -> None:
    products = caravan_products()
    assert products.ownership.shape == (5822, len(PRODUCTS)) == (5822, 21)
    assert products.demographics.shape == (5822, 43)
    loo = leave_one_product_out(products.ownership, products.demographics, seed=0)
    test_counts = np.diff(loo.test.indptr)
    assert set(test_counts[loo.users].tolist()) == {1}
    assert test_counts.sum() == len(loo.users)
    assert (loo.train.interactions + loo.test != products.ownership).nnz == 0
    assert loo.train.interactions.multiply(loo.test).nnz == 0


# ---------------------------------------------------------------------------------------- MovieLens (real)
@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    try:
        return movielens.load_ratings()
    except movielens.MovieLensUnavailable as exc:
        pytest.skip(f"MovieLens-100k unavailable (needs PyPI for the recbole wheel): {exc}")


def test_ml100k_is_read_from_the_wheel(ratings: pd.DataFrame) -> None:
    assert len(ratings) == 100_000
    assert ratings["userID"].nunique() == 943
    assert ratings["itemID"].nunique() == 1682
    assert set(ratings["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    genres = movielens.genre_matrix(np.arange(1, 1683))
    assert genres.shape == (1682, 19)
    assert (genres.sum(axis=1) >= 1).all()


def test_ml100k_benchmark_split_is_stratified_per_item(ratings: pd.DataFrame) -> None:
    split = movielens.ml100k_split()
    train, test = split.train.interactions, split.test
    assert train.nnz + test.nnz == 100_000
    assert train.multiply(test).nnz == 0
    per_item = np.asarray(train.sum(axis=0)).ravel()
    totals = per_item + np.asarray(test.sum(axis=0)).ravel()
    # the rule: round(0.75 * n) (half to even) of each item's n ratings train
    np.testing.assert_array_equal(per_item, [round(0.75 * n) for n in totals.astype(int).tolist()])
    assert (train.nnz, test.nnz) == (75_066, 24_934)
    # every movie keeps a training rating, so every movie can be recommended
    assert split.recommendable.all()


def test_cross_domain_split_keeps_domains_disjoint_and_hides_cold_targets(ratings: pd.DataFrame) -> None:
    from recommender.evaluation.cross_domain import ml_cross_domain_split

    split = ml_cross_domain_split()
    assert not set(split.source_item_ids) & set(split.target_item_ids)
    assert len(split.source_item_ids) + len(split.target_item_ids) == 1682
    train = split.train.interactions
    assert train[split.cold_users].nnz == 0
    assert (np.diff(split.test[split.cold_users].indptr) >= 5).all()
    assert split.test.nnz == split.test[split.cold_users].nnz
    assert split.train.user_features is not None
    assert (split.train.user_features[split.cold_users].sum(axis=1) >= 5).all()


@pytest.mark.slow
def test_ease_reproduces_the_published_ml100k_anchor(ratings: pd.DataFrame) -> None:
    from recommender.models.ease import EASE

    split = movielens.ml100k_split()
    model = EASE(lam=300.0).fit(split.train)
    res = evaluate(model, split.train, split.test, item_mask=split.recommendable)
    assert res["ndcg@10"] == pytest.approx(0.484, abs=0.002)


def _check_protocol(res: dict[str, object], metric: str) -> dict[str, dict[str, float]]:
    """What every protocol reports: the served artifact's entry among the models, its ablation, every
    figure with its spread, the selection made on validation, the comparison with the best single model."""
    models = res["models"]
    assert isinstance(models, dict)
    assert res["served"] == "hybrid" and "hybrid" in models and "hybrid_without_torch" in models
    for entry in models.values():
        assert {metric, f"{metric}_std", "train_s", "n_seeds"} <= set(entry)
    (selection,) = res["selection"]  # type: ignore[misc]
    assert selection["artifact_model"] == "hybrid" and selection["weights"]["warm"]
    best = res["best_single_model"]
    assert best not in ("hybrid", "hybrid_without_torch")
    assert res["served_vs_best_single"] == pytest.approx(models["hybrid"][metric] - models[best][metric])
    return models


@pytest.mark.slow
def test_ml100k_protocol_scores_the_served_artifact(ratings: pd.DataFrame) -> None:
    from recommender.evaluation import movielens as protocol

    res = protocol.run(fast=True)
    models = _check_protocol(res, "ndcg@10")
    assert models["popularity"]["ndcg@10"] < models["itemknn"]["ndcg@10"] < models["dlae"]["ndcg@10"]
    assert models["ease_lam300"]["ndcg@10_seed42"] == pytest.approx(0.484, abs=0.002)
    assert res["goal_met"] == (models["hybrid"]["ndcg@10"] >= 0.50)


def test_cross_domain_validation_users_come_from_the_training_users(ratings: pd.DataFrame) -> None:
    from recommender.evaluation.cross_domain import ml_cross_domain_split, sparsify
    from recommender.tuning import HoldoutSplitter

    split = ml_cross_domain_split(seed=42)
    for fold in HoldoutSplitter(users=0.2, cold_share=1.0, min_items=5, n_folds=3, seed=1).folds(split.train):
        # the split's own cold users have no target history left, so they are never validation users:
        # every validation query has hidden target items, and the fit set keeps every test user
        assert (np.diff(fold.target.indptr) >= 5).all()
        assert fold.fit.n_users == split.train.n_users - fold.target.shape[0]
    sparse = sparsify(split)
    assert np.diff(sparse.train.interactions.indptr).max() == 3
    assert (np.diff(sparse.test[sparse.cold_users].indptr) == 3).all()


@pytest.mark.slow
def test_cross_domain_protocol_scores_the_served_artifact(ratings: pd.DataFrame) -> None:
    from recommender.evaluation import cross_domain

    res = cross_domain.run(fast=True)
    models = _check_protocol(res, "ndcg@10")
    assert models["emcdr"]["ndcg@10"] > 1.2 * models["popularity"]["ndcg@10"]
    assert models["ridge_map"]["ndcg@10"] > models["popularity"]["ndcg@10"]
    assert models["hybrid"]["ndcg@10"] > models["popularity"]["ndcg@10"]


@pytest.mark.slow
def test_caravan_protocol_next_product_and_propensity() -> None:
    from recommender.evaluation import caravan

    res = caravan.run(fast=True)
    models = _check_protocol(res, "hr@1")
    assert models["hybrid"]["hr@1"] > models["popularity"]["hr@1"]
    # every held-out customer with two or more products contributes one query per product
    assert models["hybrid"]["n_users"] > 1500
    prop = res["propensity"]
    assert prop["models"]["propensity_model"]["auc"] > 0.7
    # the portfolio summaries are what lifts the propensity model above its own version without them
    assert prop["models"]["propensity_model"]["auc"] > prop["models"]["propensity_without_portfolio"]["auc"]
    assert res["islp_lab"]["matches_anchor"] is True


@pytest.mark.slow
def test_demo_protocol_cold_start_and_truth_recovery() -> None:
    from recommender.evaluation import demo

    res = demo.run(fast=True)
    models = _check_protocol(res, "ndcg@10")
    assert models["hybrid"]["ndcg@10"] > models["popularity"]["ndcg@10"]
    # the served model's scores track the generator's true affinities better than popularity does
    assert models["hybrid"]["truth_spearman"] > models["popularity"]["truth_spearman"]
    assert res["cold_users"] > 100
