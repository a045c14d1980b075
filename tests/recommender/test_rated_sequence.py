"""Rated, time-ordered histories: the data carries them, validation and serving pass them on, and
:class:`RatedSeqDLAE` reads them (the behavioural suite covers it on binary data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.models.base import InteractionData, as_history
from recommender.models.ease import DLAE, EASE
from recommender.models.ensemble import RoutedBlend
from recommender.models.sequence import RatedSeqDLAE, sequence_cooccurrence
from recommender.serving import ProductRanker, save_model_artifact
from recommender.tuning import HoldoutSplitter, LeaveOneOutSplitter

N_USERS, N_ITEMS = 200, 12


def rated_world(seed: int = 0) -> InteractionData:
    """Two item groups (0-5, 6-11); every user rates items of both, and likes one group (rating 5)
    better than the other (rating 1); a user rates in time order ``0, 1, 2, ...`` of their items."""
    rng = np.random.default_rng(seed)
    rows, cols, ratings, times = [], [], [], []
    for u in range(N_USERS):
        liked = u % 2
        items = rng.choice(N_ITEMS, size=6, replace=False)
        for t, i in enumerate(items):
            rows.append(u)
            cols.append(int(i))
            ratings.append(5.0 if (i >= N_ITEMS // 2) == liked else 1.0)
            times.append(1_000.0 * u + t + 1)
    shape = (N_USERS, N_ITEMS)

    def mat(v: list[float], dtype: type = np.float32) -> sp.csr_matrix:
        return sp.csr_matrix((np.asarray(v, dtype=dtype), (rows, cols)), shape=shape)

    return InteractionData(mat([1.0] * len(rows)), values=mat(ratings), times=mat(times, np.float64))


def test_as_history_keeps_values_only_when_asked() -> None:
    rated = sp.csr_matrix(np.array([[0.0, 4.0, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(as_history(rated, 3).toarray(), [[0.0, 1.0, 1.0]])
    np.testing.assert_array_equal(as_history(rated, 3, binary=False).toarray(), [[0.0, 4.0, 1.0]])
    with pytest.raises(ValueError, match="NaN"):
        as_history(np.array([[np.nan, 1.0, 0.0]]), 3, binary=False)


def test_sequence_cooccurrence_by_hand() -> None:
    # user 0 rates items 2, 0, 1 in that order; user 1 rates 1 then 2 at the same time (item order)
    times = sp.csr_matrix(np.array([[2.0, 3.0, 1.0], [0.0, 5.0, 5.0]]))
    c = sequence_cooccurrence(times, window=2, tau=1.0)
    e1, e2 = np.exp(-1.0), np.exp(-2.0)
    expected = np.array([[0.0, e1, e1], [e1, 0.0, e2 + e1], [e1, e2 + e1, 0.0]])
    np.testing.assert_allclose(c, expected)
    np.testing.assert_allclose(sequence_cooccurrence(times, window=1, tau=1.0)[1, 2], e1)


def test_without_values_and_times_it_is_dlae() -> None:
    data = rated_world()
    binary = InteractionData(data.interactions)
    ours = RatedSeqDLAE(lam=5.0, dropout=0.5, alpha=0.25).fit(binary)
    dlae = DLAE(lam=5.0, dropout=0.5, alpha=0.25).fit(binary)
    np.testing.assert_allclose(ours.weights, dlae.weights, rtol=1e-5, atol=1e-6)
    no_seq = RatedSeqDLAE(lam=5.0, seq_weight=0.0).fit(InteractionData(data.interactions, values=data.values))
    with_times = RatedSeqDLAE(lam=5.0, seq_weight=0.0).fit(data)
    np.testing.assert_allclose(no_seq.weights, with_times.weights)
    assert not np.allclose(RatedSeqDLAE(lam=5.0, seq_weight=3.0).fit(data).weights, with_times.weights)


def test_the_ratings_of_a_history_steer_its_scores() -> None:
    model = RatedSeqDLAE(lam=5.0, slope=0.2).fit(rated_world())

    def lean(ratings: list[float]) -> float:
        """How much more the second group scores than the first, for items 0 and 6 rated so."""
        scores = model.score_history(sp.csr_matrix((ratings, ([0, 0], [0, 6])), shape=(1, N_ITEMS)))[0]
        return float(scores[7:].mean() - scores[1:6].mean())

    # the item of the second group rated 5: the scores lean to its group, and the other way round
    assert lean([1.0, 5.0]) > lean([3.0, 3.0]) > lean([5.0, 1.0])
    assert lean([1.0, 5.0]) - lean([5.0, 1.0]) > 0.02
    # a binary history is scored as if every item had the same rating
    same = sp.csr_matrix(([3.0, 3.0], ([0, 0], [0, 6])), shape=(1, N_ITEMS))
    assert np.array_equal(
        np.argsort(-model.score_history([[0, 6]])[0], kind="stable"),
        np.argsort(-model.score_history(same)[0], kind="stable"),
    )


def test_a_binary_model_ignores_the_values() -> None:
    model = EASE(lam=5.0).fit(rated_world())
    rated = sp.csr_matrix(([1.0, 5.0], ([0, 0], [0, 6])), shape=(1, N_ITEMS))
    np.testing.assert_array_equal(model.score_history(rated), model.score_history([[0, 6]]))


def test_the_splitters_keep_values_and_times() -> None:
    data = rated_world()
    (fold,) = HoldoutSplitter(fraction=0.5, seed=1).folds(data)
    fit = fold.fit
    assert fit.values is not None and fit.times is not None
    for m in (fit.values, fit.times):
        assert (sp.csr_matrix(m != 0, dtype=np.float32) != fit.interactions).nnz == 0
    expected = sp.csr_matrix(data.values).multiply(fit.interactions).tocsr()
    np.testing.assert_array_equal(sp.csr_matrix(fit.values).data, expected.data)
    # the warm queries' histories carry the ratings the fit set keeps
    assert set(np.unique(fold.history.data)) <= {1.0, 5.0} and (fold.history.data == 5.0).any()
    pattern = sp.csr_matrix(fold.history != 0, dtype=np.float32)
    assert (pattern != fit.interactions[: fold.history.shape[0]]).nnz == 0
    (loo,) = LeaveOneOutSplitter(users=0.2, seed=0).folds(data)
    assert loo.fit.values is not None and (loo.history.data == 5.0).any()


def test_ratings_reach_the_model_through_a_blend_and_the_served_artifact(tmp_path: Path) -> None:
    data = rated_world()
    blend = RoutedBlend(
        {"rated": RatedSeqDLAE(lam=5.0), "ease": EASE(lam=5.0)}, warm_weights={"rated": 0.8, "ease": 0.2}
    ).fit(data)
    users = np.arange(0, N_USERS, 9)
    expected = blend.score(users, data)  # the data's rated histories
    assert not np.allclose(expected, blend.score_history(data.interactions[users]))
    ranker = ProductRanker.load(save_model_artifact(blend, data, tmp_path))
    np.testing.assert_allclose(ranker.score_batch(data.values[users]), expected, rtol=1e-6, atol=1e-6)
