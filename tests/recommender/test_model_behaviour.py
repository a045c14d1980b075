"""One behavioural suite for every recommender model, the served blend included.

Each model is fitted on a small world with planted structure: two groups of users who prefer two
groups of items, item features that reveal an item's group, and user features whose leading columns
(the topic part, as in KnowLedger profiles) reveal the user's group. Some users are cold: empty history,
features only. Every model must honour the :class:`Recommender` contract: it scores any history (also
one that is no row of the training data, and an empty one) the same way, it survives being saved and
served from an artifact, models that use history personalise warm users, and models that use user
features also personalise cold users.
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
from recommender.models.denoising import DenoisingNet
from recommender.models.ease import DLAE, EASE, EDLAE, UserDLAE
from recommender.models.emcdr import EMCDR
from recommender.models.ensemble import Ensemble, RoutedBlend, two_sided_lae
from recommender.models.fallback import ColdStartFallback
from recommender.models.hybrid import HybridTwoTower
from recommender.models.itemknn import ItemKNN
from recommender.models.logistic import ItemLogistic
from recommender.models.popularity import Popularity
from recommender.models.registry import MODEL_CLASSES, describe, restore, state_arrays
from recommender.models.ridge_map import RidgeMap
from recommender.models.sequence import RatedSeqDLAE
from recommender.serving import ProductRanker, save_model_artifact
from tests.recommender.toy_world import N_ITEMS, N_WARM, TOPIC_DIM, Toy, make_toy


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
    "dlae_low_rank": Spec(lambda: DLAE(lam=5.0, dropout=0.5, alpha=0.25, rank=6), warm=True, cold=False),
    "dlae_torch": Spec(lambda: DLAE(lam=5.0, dropout=0.5, alpha=0.25, device="cpu"), warm=True, cold=False),
    "user_dlae": Spec(lambda: UserDLAE(lam=5.0, dropout=0.5, alpha=0.25), warm=True, cold=False),
    "rated_seq_dlae": Spec(lambda: RatedSeqDLAE(lam=5.0, dropout=0.5, alpha=0.25), warm=True, cold=False),
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
    "item_logistic": Spec(lambda: ItemLogistic(l2=1e-3), warm=True, cold=False),
    "item_logistic+features": Spec(lambda: ItemLogistic(l2=1e-3, use_features=True), warm=True, cold=True),
    "denoising_net": Spec(
        lambda: DenoisingNet(hidden=16, epochs=60, lr=1e-2, batch_size=32, cold_prob=0.5, targets="held_out"),
        warm=True,
        cold=True,
    ),
    "denoising_net_hide_one": Spec(
        lambda: DenoisingNet(
            hidden=16,
            epochs=40,
            lr=1e-2,
            batch_size=32,
            objective="hide_one",
            linear_skip=True,
            cold_prob=0.3,
        ),
        warm=True,
        cold=True,
    ),
    "hybrid (the served blend)": Spec(
        lambda: RoutedBlend(
            {
                "dlae": DLAE(lam=5.0, dropout=0.5, alpha=0.25),
                "ridge_map": RidgeMap(ridge=1.0),
                "pop": Popularity(),
            },
            warm_weights={"dlae": 0.7, "ridge_map": 0.3},
            cold_weights={"ridge_map": 0.8, "pop": 0.2},
        ),
        warm=True,
        cold=True,
    ),
    "two_tower": Spec(
        lambda: HybridTwoTower(dim=16, hidden=16, epochs=40, batch_size=32, lr=5e-3, cold_prob=0.5, seed=0),
        warm=True,
        cold=True,
    ),
    "two_tower_wide": Spec(
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
    wrapped = fitted["itemknn+content_fallback"].score(users, toy.data)
    knn = fitted["itemknn"].score(users, toy.data)
    content = fitted["content"].score(users, toy.data)
    np.testing.assert_array_equal(wrapped[[0, 2]], knn[[0, 2]])
    np.testing.assert_array_equal(wrapped[[1, 3]], content[[1, 3]])
    with pytest.raises(TypeError, match="Recommender"):
        ColdStartFallback(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["itemknn", "ease", "edlae", "dlae", "dlae_low_rank", "user_dlae", "rated_seq_dlae"]
)
def test_item_item_models_answer_an_empty_history_with_the_training_popularity(
    name: str, toy: Toy, fitted: dict[str, Recommender]
) -> None:
    shares = np.asarray(toy.data.interactions.sum(axis=0)).ravel() / toy.data.n_users
    np.testing.assert_allclose(fitted[name].score_history([[]])[0], shares, rtol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_an_empty_history_is_never_answered_by_column_order(
    name: str, toy: Toy, fitted: dict[str, Recommender]
) -> None:
    user = toy.cold[:1]
    scores = fitted[name].score_history(sp.csr_matrix((1, N_ITEMS)), toy.data.user_features[user])
    assert np.ptp(scores) > 0


@pytest.mark.parametrize("name", list(MODELS))
def test_any_history_is_scored_like_a_row_of_the_data(
    name: str, toy: Toy, fitted: dict[str, Recommender]
) -> None:
    model = fitted[name]
    users = np.array([3, N_WARM + 1, 8])
    expected = model.score(users, toy.data)
    feats = toy.data.user_features[users]
    as_lists = [toy.data.interactions[u].indices.tolist() for u in users]
    np.testing.assert_allclose(model.score_history(as_lists, feats), expected, rtol=1e-5, atol=1e-6)
    # a history no training user had: the first two items of each group
    new = [[0, 1, N_ITEMS // 2, N_ITEMS // 2 + 1]]
    dense = np.zeros((1, N_ITEMS), dtype=np.float32)
    dense[0, new[0]] = 1.0
    np.testing.assert_allclose(
        model.score_history(new, feats[:1]), model.score_history(dense, feats[:1]), rtol=1e-6, atol=1e-7
    )
    with pytest.raises(ValueError, match="item"):
        model.score_history([[N_ITEMS]], feats[:1])
    if model.uses_features:
        with pytest.raises(ValueError, match="user_features"):
            model.score_history(as_lists, None)


@pytest.mark.parametrize("name", list(MODELS))
def test_saved_and_served_scores_equal_the_models(
    name: str, toy: Toy, fitted: dict[str, Recommender], tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = fitted[name]
    users = np.arange(0, toy.data.n_users, 7)
    expected = model.score(users, toy.data)
    spec = describe(model)
    assert spec["name"] in MODEL_CLASSES
    restored = restore(spec, state_arrays(model))
    np.testing.assert_allclose(restored.score(users, toy.data), expected, rtol=1e-6, atol=1e-6)
    ranker = ProductRanker.load(save_model_artifact(model, toy.data, tmp_path_factory.mktemp("artifact")))
    served = ranker.score_batch(toy.data.interactions[users], toy.data.user_features[users])
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-6)


def test_low_rank_dlae_is_exact_when_the_gram_matrix_has_that_rank() -> None:
    # ten distinct item columns, each repeated three times: the Gram matrix has rank <= 10
    rng = np.random.default_rng(3)
    base = (rng.random((200, 10)) < 0.3).astype(np.float32)
    data = InteractionData(sp.csr_matrix(np.repeat(base, 3, axis=1)))
    exact = DLAE(lam=2.0, dropout=0.4, alpha=0.25).fit(data)
    low = DLAE(lam=2.0, dropout=0.4, alpha=0.25, rank=12).fit(data)
    assert exact.weights is not None and low.weights is None and low.left is not None
    users = np.arange(200)
    np.testing.assert_allclose(low.score(users, data), exact.score(users, data), rtol=1e-4, atol=1e-5)
    assert DLAE(rank="auto").effective_rank(1_000) is None
    assert DLAE(rank="auto").effective_rank(50_000) == 256
    with pytest.raises(ValueError, match="rank"):
        DLAE(rank=0)


def test_a_routed_blend_uses_the_cold_weights_exactly_for_empty_histories(
    toy: Toy, fitted: dict[str, Recommender]
) -> None:
    blend = fitted["hybrid (the served blend)"]
    assert isinstance(blend, RoutedBlend)
    cold = toy.cold[:5]
    only_ridge = RoutedBlend.from_fitted(blend.members, {"ridge_map": 1.0})
    # cold route: 0.8 ridge + 0.2 popularity; popularity is the same for everyone, so the ranking of a
    # cold user follows the ridge map's z-scores shifted by a constant share of popularity
    ranked = blend.recommend(cold, toy.data, k=N_ITEMS)
    assert ranked.shape == (5, N_ITEMS)
    warm = toy.warm[:5]
    np.testing.assert_allclose(
        blend.score(warm, toy.data),
        RoutedBlend.from_fitted(blend.members, {"dlae": 0.7, "ridge_map": 0.3}).score(warm, toy.data),
        rtol=1e-6,
    )
    assert only_ridge.n_items == N_ITEMS and set(only_ridge.members) == {"ridge_map"}
    with pytest.raises(ValueError, match="not members"):
        RoutedBlend(blend.members, {"nope": 1.0})
    with pytest.raises(ValueError, match="all be zero"):
        RoutedBlend(blend.members, {"dlae": 0.0})
    with pytest.raises(ValueError, match="fitted"):
        RoutedBlend.from_fitted({"dlae": DLAE()}, {"dlae": 1.0})
