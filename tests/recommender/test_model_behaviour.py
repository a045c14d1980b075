"""One behavioural suite for every recommender model.

Each model is fitted on a small world with planted structure: two groups of users who prefer two
groups of items, item features that reveal an item's group, and user features whose leading columns
(the topic part, as in KnowLedger profiles) reveal the user's group. Some users are cold: empty history,
features only. Every model must honour the :class:`Recommender` contract; models that use history must
personalise for warm users, and models that use user features must also personalise for cold users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.models.base import InteractionData, Recommender
from recommender.models.blend import Blend
from recommender.models.content import ContentCosine
from recommender.models.ease import DLAE, EASE, EDLAE, UserDLAE
from recommender.models.emcdr import EMCDR
from recommender.models.ensemble import Ensemble, two_sided_lae
from recommender.models.fallback import ColdStartFallback
from recommender.models.hybrid import HybridTwoTower
from recommender.models.itemknn import ItemKNN
from recommender.models.popularity import Popularity
from recommender.models.ridge_map import RidgeMap

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


@dataclass(frozen=True)
class Spec:
    factory: Callable[[], Recommender]
    warm: bool  # personalises users with history
    cold: bool  # personalises users with features only


MODELS: dict[str, Spec] = {
    "popularity": Spec(Popularity, warm=False, cold=False),
    "itemknn": Spec(lambda: ItemKNN(k=10), warm=True, cold=False),
    "content": Spec(ContentCosine, warm=True, cold=True),
    "blend": Spec(lambda: Blend(ItemKNN(k=10), ContentCosine(), alpha=0.5), warm=True, cold=True),
    "ease": Spec(lambda: EASE(lam=10.0), warm=True, cold=False),
    "edlae": Spec(lambda: EDLAE(lam=5.0, dropout=0.3), warm=True, cold=False),
    "dlae": Spec(lambda: DLAE(lam=5.0, dropout=0.5, alpha=0.25), warm=True, cold=False),
    "user_dlae": Spec(lambda: UserDLAE(lam=5.0, dropout=0.5, alpha=0.25), warm=True, cold=False),
    "two_sided_lae": Spec(
        lambda: two_sided_lae((5.0, 0.5, 0.25), (5.0, 0.5, 0.25), 0.5), warm=True, cold=False
    ),
    "ease+fallback": Spec(lambda: ColdStartFallback(EASE(lam=10.0)), warm=True, cold=False),
    "itemknn+content_fallback": Spec(
        lambda: ColdStartFallback(ItemKNN(k=10), fallback=ContentCosine()), warm=True, cold=True
    ),
    "ensemble": Spec(lambda: Ensemble([(EASE(lam=10.0), 0.7), (Popularity(), 0.3)]), warm=True, cold=False),
    "ridge_map": Spec(lambda: RidgeMap(ridge=1.0), warm=True, cold=True),
    "emcdr": Spec(lambda: EMCDR(target_dim=4, source_dim=4, ridge=1.0), warm=True, cold=True),
    "hybrid": Spec(
        lambda: HybridTwoTower(dim=16, hidden=16, epochs=40, batch_size=32, lr=5e-3, cold_prob=0.5, seed=0),
        warm=True,
        cold=True,
    ),
    "hybrid_wide": Spec(
        lambda: HybridTwoTower(
            dim=16,
            hidden=16,
            epochs=15,
            batch_size=32,
            lr=5e-3,
            cold_prob=0.5,
            wide_ridge=1.0,
            wide_weight=0.5,
            seed=0,
        ),
        warm=True,
        cold=True,
    ),
}


@pytest.fixture(scope="module")
def toy() -> Toy:
    return make_toy()


@pytest.fixture(scope="module")
def fitted(toy: Toy) -> dict[str, Recommender]:
    return {name: spec.factory().fit(toy.data) for name, spec in MODELS.items()}


def own_group_share(model: Recommender, toy: Toy, users: np.ndarray, k: int = 5) -> float:
    top = model.recommend(users, toy.data, k=k)
    return float(np.mean(toy.item_group[top] == toy.user_group[users][:, None]))


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_returns_self_and_scores_have_the_contract_shape(name: str, toy: Toy) -> None:
    model = MODELS[name].factory()
    assert model.fit(toy.data) is model
    users = np.array([0, 3, N_WARM + 1])
    scores = model.score(users, toy.data)
    assert scores.shape == (3, N_ITEMS)
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("name", list(MODELS))
def test_recommend_excludes_seen_items_and_returns_distinct_items(
    name: str, toy: Toy, fitted: dict[str, Recommender]
) -> None:
    users = toy.warm[:20]
    top = fitted[name].recommend(users, toy.data, k=8)
    assert top.shape == (20, 8)
    for row, u in zip(top, users, strict=True):
        assert len(set(row.tolist())) == 8
        assert not set(row.tolist()) & set(toy.data.interactions[u].indices.tolist())


@pytest.mark.parametrize("name", list(MODELS))
def test_scoring_a_subset_equals_the_rows_of_scoring_everyone(
    name: str, toy: Toy, fitted: dict[str, Recommender]
) -> None:
    everyone = np.arange(toy.data.n_users)
    full = fitted[name].score(everyone, toy.data)
    subset = np.array([N_WARM + 2, 5, 0, 77])
    np.testing.assert_allclose(fitted[name].score(subset, toy.data), full[subset], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_fitting_twice_gives_identical_scores_and_leaves_the_data_untouched(name: str, toy: Toy) -> None:
    before = toy.data.interactions.copy()
    feats_before = None if toy.data.user_features is None else toy.data.user_features.copy()
    a = MODELS[name].factory().fit(toy.data).score(np.arange(40), toy.data)
    b = MODELS[name].factory().fit(toy.data).score(np.arange(40), toy.data)
    np.testing.assert_array_equal(a, b)
    assert (toy.data.interactions != before).nnz == 0
    if feats_before is not None:
        np.testing.assert_array_equal(toy.data.user_features, feats_before)


@pytest.mark.parametrize("name", list(MODELS))
def test_scoring_before_fit_is_a_clear_error(name: str, toy: Toy) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        MODELS[name].factory().score(np.array([0]), toy.data)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_catalogue_of_another_size_is_rejected(name: str, toy: Toy, fitted: dict[str, Recommender]) -> None:
    other = make_toy(seed=1).data
    wider = InteractionData(
        sp.hstack([other.interactions, sp.csr_matrix((other.n_users, 2))]).tocsr(),
        np.vstack([other.item_features, np.zeros((2, TOPIC_DIM), dtype=np.float32)]),
        other.user_features,
        dict(other.meta),
    )
    with pytest.raises(ValueError, match="items"):
        fitted[name].score(np.array([0]), wider)


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.warm])
def test_personalises_users_with_history(name: str, toy: Toy, fitted: dict[str, Recommender]) -> None:
    # random ranking would put about half of the top-5 in the user's own group
    assert own_group_share(fitted[name], toy, toy.warm) > 0.75


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.cold])
def test_personalises_cold_users_from_features_alone(
    name: str, toy: Toy, fitted: dict[str, Recommender]
) -> None:
    assert toy.data.interactions[toy.cold].nnz == 0
    assert own_group_share(fitted[name], toy, toy.cold) > 0.75


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if not s.cold])
def test_models_without_feature_transfer_do_not_personalise_cold_users(
    name: str, toy: Toy, fitted: dict[str, Recommender]
) -> None:
    # every cold user gets the same list: nothing user-specific is known to these models
    top = fitted[name].recommend(toy.cold, toy.data, k=5)
    assert len({tuple(sorted(row)) for row in top.tolist()}) == 1


def test_cold_start_fallback_uses_the_fallback_exactly_for_users_without_history(
    toy: Toy, fitted: dict[str, Recommender]
) -> None:
    users = np.array([0, N_WARM, 5, N_WARM + 3])  # warm, cold, warm, cold
    wrapped = fitted["ease+fallback"].score(users, toy.data)
    ease = fitted["ease"].score(users, toy.data)
    popularity = fitted["popularity"].score(users, toy.data)
    np.testing.assert_array_equal(wrapped[[0, 2]], ease[[0, 2]])
    np.testing.assert_array_equal(wrapped[[1, 3]], popularity[[1, 3]])
    # without the fallback an item-item model gives a cold user all zeros (the ranking is column order)
    assert not ease[[1, 3]].any()
    with pytest.raises(TypeError, match="Recommender"):
        ColdStartFallback(object())  # type: ignore[arg-type]
