"""The torch hybrid and its training loop: determinism, devices, batching, losses, transfer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recommender.data.demo import DemoSplit
from recommender.evaluator import evaluate
from recommender.models.base import InteractionData
from recommender.models.bpr_mf import BPRMF, train_bpr_mf
from recommender.models.hybrid import HybridTwoTower
from recommender.models.popularity import Popularity
from recommender.models.two_tower import TwoTowerConfig, make_user_batch
from recommender.trainer import resolve_device


def toy_data(seed: int = 0, n_users: int = 80, n_items: int = 12) -> InteractionData:
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix((rng.random((n_users, n_items)) < 0.3).astype(np.float32))
    x = sp.csr_matrix(sp.diags((np.arange(n_users) < n_users - 10).astype(np.float32)) @ x)  # 10 cold users
    x.eliminate_zeros()
    return InteractionData(
        x,
        rng.normal(size=(n_items, 3)).astype(np.float32),
        rng.normal(size=(n_users, 5)).astype(np.float32),
    )


def small(**kw: object) -> HybridTwoTower:
    params: dict[str, object] = {"dim": 8, "hidden": 8, "epochs": 3, "batch_size": 16, "seed": 0}
    params.update(kw)
    return HybridTwoTower(**params)  # type: ignore[arg-type]


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    data = toy_data()
    a, b, c = small().fit(data), small().fit(data), small(seed=1).fit(data)
    assert a.arrays is not None and b.arrays is not None and c.arrays is not None
    assert a.arrays.keys() == b.arrays.keys()
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    assert not np.array_equal(a.arrays["item_vectors"], c.arrays["item_vectors"])


def test_training_restores_the_global_determinism_setting() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    small().fit(toy_data())
    assert torch.are_deterministic_algorithms_enabled() == before


def test_device_defaults_to_cpu_without_a_gpu_and_cuda_request_fails_clearly() -> None:
    if torch.cuda.is_available():
        assert resolve_device(None).type == "cuda"
        return
    assert resolve_device(None).type == "cpu"
    model = small().fit(toy_data())
    assert model.report is not None and model.report.device == "cpu"
    with pytest.raises(RuntimeError, match="cuda"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_user_embedding_and_item_embeddings_reproduce_the_scores() -> None:
    data = toy_data()
    model = small().fit(data)
    users = np.array([0, 5, 75])  # 75 is cold
    scores = model.score(users, data)
    assert model.user_feature_dim == 5
    for row, u in enumerate(users):
        assert data.user_features is not None
        vec = model.user_embedding(data.user_features[u], data.interactions[u])
        assert vec.shape == (8,)
        np.testing.assert_allclose(
            vec @ model.item_embeddings.T + model.item_bias, scores[row], rtol=1e-5, atol=1e-5
        )
    # a dense binary history row is accepted too and gives the same vector
    assert data.user_features is not None
    dense = data.interactions[0].toarray().ravel()
    np.testing.assert_allclose(
        model.user_embedding(data.user_features[0], dense),
        model.user_embedding(data.user_features[0], data.interactions[0]),
        rtol=1e-6,
    )


def test_wide_part_blends_scores_and_is_validated() -> None:
    data = toy_data()
    model = small(wide_ridge=1.0, wide_weight=0.5).fit(data)
    assert model.arrays is not None and model.arrays["wide_w"].shape == (6, 12)  # 5 features + intercept
    scores = model.score(np.arange(20), data)
    # a blend of two per-user z-scores has mean 0 per user
    np.testing.assert_allclose(scores.mean(axis=1), 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="wide_ridge"):
        HybridTwoTower(wide_ridge=0.0)
    with pytest.raises(ValueError, match="wide_weight"):
        HybridTwoTower(wide_weight=1.5)


def test_with_wide_equals_a_fresh_fit_with_those_wide_settings() -> None:
    data = toy_data()
    base = small().fit(data)
    users = np.arange(data.n_users)
    for ridge, weight in ((1.0, 0.5), (10.0, 0.25)):
        fresh = small(wide_ridge=ridge, wide_weight=weight).fit(data)
        swapped = base.with_wide(data, ridge, weight)
        np.testing.assert_allclose(swapped.score(users, data), fresh.score(users, data), rtol=1e-5, atol=1e-5)
    # removing the wide part again gives back the towers alone; the original is left untouched
    widened = base.with_wide(data, 1.0, 0.5)
    np.testing.assert_array_equal(widened.with_wide(data, None).score(users, data), base.score(users, data))
    assert base.wide_ridge is None and base.arrays is not None and "wide_w" not in base.arrays
    with pytest.raises(ValueError, match="wide_weight"):
        base.with_wide(data, 1.0, 1.5)


def test_make_user_batch_splits_each_history_into_input_and_targets() -> None:
    data = toy_data()
    x = sp.csr_matrix(data.interactions)
    users = np.arange(20)
    rng = np.random.default_rng(0)
    batch = make_user_batch(x, users, rng, history_dropout=0.5, cold_prob=0.0, device=torch.device("cpu"))
    assert batch.n_interactions == x[users].nnz
    offsets = [*batch.input_offsets.numpy().tolist(), batch.input_items.numel()]
    for row, u in enumerate(users):
        history = set(x[u].indices.tolist())
        inputs = set(batch.input_items.numpy()[offsets[row] : offsets[row + 1]].tolist())
        targets = set(batch.target_items.numpy()[batch.target_rows.numpy() == row].tolist())
        assert inputs | targets == history
        assert not inputs & targets
        weights = batch.input_weights.numpy()[offsets[row] : offsets[row + 1]]
        if inputs:
            np.testing.assert_allclose(weights, 1.0 / np.sqrt(len(inputs)))
    cold = make_user_batch(x, users, rng, history_dropout=0.0, cold_prob=1.0, device=torch.device("cpu"))
    assert cold.input_items.numel() == 0 and cold.target_items.numel() == x[users].nnz
    full = make_user_batch(x, users, rng, 0.5, 0.0, torch.device("cpu"), all_targets=True)
    assert full.target_items.numel() == x[users].nnz


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("lr", 0.0),
        ("loss", "hinge"),
        ("history_dropout", 1.0),
        ("cold_prob", 1.5),
        ("n_negatives", 0),
        ("feature_dropout", -0.1),
        ("targets", "some"),
    ],
)
def test_train_config_names_the_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TwoTowerConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "loss_kw", [{"loss": "softmax"}, {"loss": "bpr"}, {"loss": "softmax", "n_negatives": 6}]
)
def test_every_loss_decreases_during_training(loss_kw: dict[str, object]) -> None:
    model = small(epochs=15, lr=1e-2, **loss_kw).fit(toy_data())
    assert model.report is not None
    losses = model.report.epoch_loss
    assert len(losses) == 15 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert all(rate > 0 for rate in model.report.interactions_per_s)


def test_epoch_callback_sees_a_scorable_model_every_epoch() -> None:
    data = toy_data()
    model = small(epochs=4)
    seen: list[int] = []

    def callback(epoch: int, m: HybridTwoTower) -> None:
        assert m.score(np.array([0]), data).shape == (1, data.n_items)
        seen.append(epoch)

    model.epoch_callback = callback
    model.fit(data)
    assert seen == [0, 1, 2, 3]


def test_bad_inputs_are_rejected_with_the_field_named() -> None:
    data = toy_data()
    assert data.user_features is not None
    short = InteractionData(data.interactions, data.item_features, data.user_features[:10])
    with pytest.raises(ValueError, match="user_features"):
        small().fit(short)
    nan = data.user_features.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="user_features"):
        small().fit(InteractionData(data.interactions, data.item_features, nan))
    model = small().fit(data)
    with pytest.raises(ValueError, match="user_features"):
        model.user_embedding(np.zeros(3), None)
    with pytest.raises(ValueError, match="item columns"):
        model.user_embedding(data.user_features[0], np.ones(5))
    with pytest.raises(RuntimeError, match="fitted"):
        _ = HybridTwoTower().item_embeddings
    empty = InteractionData(sp.csr_matrix((5, 4)), None, None)
    with pytest.raises(ValueError, match="nothing to train"):
        small().fit(empty)


def test_bpr_mf_reference_learns_and_is_deterministic() -> None:
    data = toy_data(n_users=200, n_items=30)
    a = train_bpr_mf(BPRMF(200, 30, dim=8), data.interactions, epochs=30, batch_size=64, lr=0.05, seed=0)
    b = train_bpr_mf(BPRMF(200, 30, dim=8), data.interactions, epochs=30, batch_size=64, lr=0.05, seed=0)
    assert a.epoch_loss[-1] < a.epoch_loss[0]
    assert a.epoch_loss == b.epoch_loss


def test_cold_start_learners_get_better_products_than_popularity(world_split: DemoSplit) -> None:
    """Transfer through the topic space: with only the course profile, beat the most-popular list."""
    split = world_split
    cold = split.cold_eval_users
    assert len(cold) > 100
    hybrid = HybridTwoTower(
        dim=32,
        hidden=64,
        epochs=40,
        batch_size=64,
        cold_prob=0.5,
        feature_dropout=0.2,
        wide_ridge=10.0,
        wide_weight=0.5,
        seed=0,
    ).fit(split.train)
    pop = Popularity().fit(split.train)
    ndcg_h = evaluate(hybrid, split.train, split.test, users=cold)["ndcg@10"]
    ndcg_p = evaluate(pop, split.train, split.test, users=cold)["ndcg@10"]
    assert ndcg_h > ndcg_p
