"""Popularity, ItemKNN, ContentCosine and Blend on tiny matrices whose rankings are checked by hand."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender
from recommender.models.blend import Blend, normalise_rows
from recommender.models.content import ContentCosine
from recommender.models.itemknn import ItemKNN
from recommender.models.popularity import Popularity


def matrix(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def test_popularity_counts_users_per_item() -> None:
    # counts: item0 4 users, item1 3, item2 2, item3 1
    data = InteractionData(matrix([[0], [0, 1], [0, 1, 2], [0, 1, 2, 3]], 4))
    model = Popularity().fit(data)
    np.testing.assert_array_equal(model.score(np.array([0, 3]), data), [[4, 3, 2, 1], [4, 3, 2, 1]])
    np.testing.assert_array_equal(model.recommend(np.array([0]), data, k=3), [[1, 2, 3]])
    np.testing.assert_array_equal(model.recommend(np.array([0]), data, k=2, exclude_seen=False), [[0, 1]])


# users x items for ItemKNN:
#   u0: 0 1 | u1: 0 1 | u2: 1 2 | u3: 2 3 | u4: 0
# column norms: |i0| = sqrt(3) (u0,u1,u4), |i1| = sqrt(3) (u0,u1,u2), |i2| = sqrt(2) (u2,u3), |i3| = 1 (u3)
# dots: (0,1) = 2, (1,2) = 1, (2,3) = 1, others 0
# cosine: s01 = 2/3, s12 = 1/sqrt(6) ~ 0.408, s23 = 1/sqrt(2) ~ 0.707
KNN = matrix([[0, 1], [0, 1], [1, 2], [2, 3], [0]], 4)


def test_itemknn_cosine_scores_by_hand() -> None:
    data = InteractionData(KNN)
    model = ItemKNN(k=100).fit(data)
    # a user who only has item 1: item0 gets s01, item2 gets s12, item3 nothing
    history = InteractionData(matrix([[1]], 4))
    np.testing.assert_allclose(
        model.score(np.array([0]), history), [[2 / 3, 0.0, 1 / math.sqrt(6), 0.0]], rtol=1e-6
    )
    np.testing.assert_array_equal(model.recommend(np.array([0]), history, k=3), [[0, 2, 3]])
    # u2 (items 1, 2): item0 = s01 = 0.667, item3 = s23 = 0.707 -> item 3 first
    np.testing.assert_array_equal(model.recommend(np.array([2]), data, k=2), [[3, 0]])


def test_itemknn_keeps_only_top_k_neighbours() -> None:
    # with k=1 each item keeps one neighbour: 0->1 (2/3), 1->0 (2/3 > 0.408), 2->3 (0.707 > 0.408), 3->2
    model = ItemKNN(k=1).fit(InteractionData(KNN))
    history = InteractionData(matrix([[1]], 4))
    # item 2's only neighbour is item 3, so item 1 in the history no longer supports item 2
    np.testing.assert_allclose(model.score(np.array([0]), history), [[2 / 3, 0.0, 0.0, 0.0]], rtol=1e-6)


def test_itemknn_shrink_damps_similarity() -> None:
    # shrink 1: s01 = 2 / (sqrt(3) * sqrt(3) + 1) = 0.5
    model = ItemKNN(k=100, shrink=1.0).fit(InteractionData(KNN))
    scores = model.score(np.array([0]), InteractionData(matrix([[1]], 4)))
    assert scores[0, 0] == pytest.approx(0.5)


def test_itemknn_answers_an_empty_history_with_the_training_popularity() -> None:
    data = InteractionData(KNN)
    model = ItemKNN().fit(data)
    shares = np.asarray(KNN.sum(axis=0)).ravel() / KNN.shape[0]
    np.testing.assert_allclose(model.score(np.array([0]), InteractionData(matrix([[]], 4)))[0], shares)
    np.testing.assert_allclose(model.score_history([[]])[0], shares)


# item features: i0 = (1, 0), i1 = (0, 1), i2 = (1, 1)/sqrt(2)
ITEM_FEATURES = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
R = 1 / math.sqrt(2)


def content_data(rows: list[list[int]], user_features: np.ndarray | None, meta: dict[str, int] | None = None):
    return InteractionData(
        matrix(rows, 3), item_features=ITEM_FEATURES, user_features=user_features, meta=meta or {}
    )


def test_content_from_history() -> None:
    # user history {i0}: user vector (1, 0); cosines: i0 1, i1 0, i2 1/sqrt(2)
    data = content_data([[0]], None)
    model = ContentCosine().fit(data)
    np.testing.assert_allclose(model.score(np.array([0]), data), [[1.0, 0.0, R]], atol=1e-6)
    np.testing.assert_array_equal(model.recommend(np.array([0]), data, k=2), [[2, 1]])


def test_content_cold_user_uses_profile_topics() -> None:
    # cold user (no history); profile = topic part (0, 1) followed by two behaviour columns
    profile = np.array([[0.0, 3.0, 7.0, 0.5]])
    data = content_data([[]], profile, meta={"user_topic_dim": 2})
    model = ContentCosine().fit(data)
    np.testing.assert_allclose(model.score(np.array([0]), data), [[0.0, 1.0, R]], atol=1e-6)
    np.testing.assert_array_equal(model.recommend(np.array([0]), data, k=3), [[1, 2, 0]])
    # without user features the same cold user has no signal at all
    assert np.all(ContentCosine(use_user_features=False).fit(data).score(np.array([0]), data) == 0)
    # a declared topic dimension of 0 means "user features are not in the item space" (read at fit time)
    undeclared = content_data([[]], profile, meta={"user_topic_dim": 0})
    assert np.all(ContentCosine().fit(undeclared).score(np.array([0]), undeclared) == 0)


def test_content_history_plus_profile() -> None:
    # history {i0} -> (1, 0); profile (0, 1) -> (0, 1); sum (1, 1) -> cosines i0 R, i1 R, i2 1
    data = content_data([[0]], np.array([[0.0, 2.0]]))
    scores = ContentCosine().fit(data).score(np.array([0]), data)
    np.testing.assert_allclose(scores, [[R, R, 1.0]], atol=1e-6)


def test_content_rejects_mismatched_declaration() -> None:
    data = content_data([[0]], np.array([[0.0, 1.0, 0.0]]), meta={"user_topic_dim": 3})
    with pytest.raises(ValueError, match="user_topic_dim"):
        ContentCosine().fit(data)
    with pytest.raises(ValueError, match="item_features"):
        ContentCosine().fit(InteractionData(matrix([[0]], 3)))


class Fixed(Recommender):
    """Returns fixed scores per user, to check the blend arithmetic (the user's index is its feature)."""

    name: ClassVar[str] = "fixed"
    uses_features: ClassVar[bool] = True

    def __init__(self, scores: np.ndarray | list[list[float]]) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        self.fitted = False

    def fit(self, data: InteractionData) -> Fixed:
        self.fitted = True
        self._remember(data)
        return self

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert features is not None
        return self.scores[features[:, 0].astype(int)]


def test_blend_minmax_by_hand() -> None:
    cf = Fixed([[0.0, 2.0, 4.0], [0.0, 0.0, 0.0]])  # user 1 is cold for CF
    content = Fixed([[3.0, 1.0, 2.0], [0.2, 0.9, 0.5]])
    data = InteractionData(matrix([[], []], 3), user_features=np.array([[0.0], [1.0]]))
    blend = Blend(cf, content, alpha=0.5).fit(data)
    assert cf.fitted and content.fitted
    # user 0: cf -> (0, .5, 1), content -> (1, 0, .5); 0.5 * each -> (.5, .25, .75)
    # user 1: cf constant -> zeros; content (0.2, 0.9, 0.5) -> (0, 1, 3/7); halved -> (0, .5, 3/14)
    np.testing.assert_allclose(
        blend.score(np.array([0, 1]), data), [[0.5, 0.25, 0.75], [0.0, 0.5, 3 / 14]], atol=1e-6
    )
    np.testing.assert_array_equal(blend.recommend(np.array([0, 1]), data, k=3), [[2, 0, 1], [1, 2, 0]])
    only_cf = Blend(cf, content, alpha=1.0).fit(data).score(np.array([0]), data)
    np.testing.assert_allclose(only_cf, [[0.0, 0.5, 1.0]], atol=1e-6)


def test_zscore_normalisation_by_hand() -> None:
    # row (1, 2, 3): mean 2, population std sqrt(2/3) -> (-1.2247, 0, 1.2247)
    z = normalise_rows(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]), "zscore")
    np.testing.assert_allclose(z[0], [-math.sqrt(1.5), 0.0, math.sqrt(1.5)], atol=1e-9)
    np.testing.assert_array_equal(z[1], [0.0, 0.0, 0.0])
    # masked (-inf) entries do not stretch the range
    np.testing.assert_allclose(normalise_rows(np.array([[-np.inf, 1.0, 3.0]]))[0], [0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    "factory",
    [Popularity, lambda: ItemKNN(k=2), ContentCosine, lambda: Blend(ItemKNN(k=2), ContentCosine(), 0.3)],
)
def test_models_are_deterministic_and_shaped(factory: Callable[[], Recommender]) -> None:
    rng = np.random.default_rng(5)
    x = sp.csr_matrix((rng.random((30, 12)) < 0.2).astype(np.float64))
    data = InteractionData(x, item_features=rng.random((12, 4)), user_features=rng.random((30, 6)))
    users = np.arange(30)
    first = factory().fit(data).score(users, data)
    second = factory().fit(data).score(users, data)
    assert first.shape == (30, 12)
    np.testing.assert_array_equal(first, second)
    top = factory().fit(data).recommend(users, data, k=3)
    seen = x.toarray().astype(bool)
    assert not seen[np.arange(30)[:, None], top].any()


def test_models_check_the_item_count() -> None:
    data = InteractionData(KNN)
    other = InteractionData(matrix([[0]], 5))
    for model in (Popularity().fit(data), ItemKNN().fit(data)):
        with pytest.raises(ValueError, match="items"):
            model.score(np.array([0]), other)
    with pytest.raises(ValueError, match="alpha"):
        Blend(Popularity(), Popularity(), alpha=1.5)
    with pytest.raises(ValueError, match="k must be"):
        ItemKNN(k=0)


def test_ridge_map_is_the_ridge_solution_on_l2_normalised_features() -> None:
    from recommender.models.ridge_map import RidgeMap

    # u0 features [3, 4] -> [0.6, 0.8], owns item 0; u1 [0, 2] -> [0, 1], owns item 1; u2 is cold
    x = matrix([[0], [1], []], 2)
    feats = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    data = InteractionData(x, user_features=feats)
    model = RidgeMap(ridge=1.0).fit(data)
    # independent statement: ridge = least squares on the system stacked with sqrt(ridge) * I
    f = np.array([[0.6, 0.8, 1.0], [0.0, 1.0, 1.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    w, *_ = np.linalg.lstsq(np.vstack([f, np.eye(3)]), np.vstack([y, np.zeros((3, 2))]), rcond=None)
    np.testing.assert_allclose(model.score(np.array([2]), data), [[1.0, 0.0, 1.0] @ w], atol=1e-5)
    np.testing.assert_allclose(model.score(np.array([0, 1]), data), f @ w, atol=1e-5)
    with pytest.raises(ValueError, match="user_features"):
        RidgeMap().fit(InteractionData(x))
