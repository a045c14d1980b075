"""Versioned artifacts and the numpy ProductRanker over the served blend."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.artifacts import (
    ArtifactError,
    ArtifactMetadata,
    data_fingerprint,
    load_artifact,
    save_artifact,
)
from recommender.data.demo import DemoSplit, DemoWorld, demo_interaction_data
from recommender.models.base import InteractionData
from recommender.models.ease import DLAE
from recommender.models.ensemble import RoutedBlend
from recommender.models.ridge_map import RidgeMap
from recommender.serving import (
    BASELINE,
    ProductRanker,
    RankedProduct,
    knowledge_arrays,
    knowledge_from_arrays,
    save_model_artifact,
)


@pytest.fixture(scope="module")
def split(small_world: DemoWorld) -> DemoSplit:
    return demo_interaction_data(small_world, test_fraction=0.3, seed=0)


@pytest.fixture(scope="module")
def model(split: DemoSplit) -> RoutedBlend:
    members = {"dlae": DLAE(lam=10.0, dropout=0.5, alpha=0.0), "ridge_map": RidgeMap(ridge=3.0)}
    return RoutedBlend(members, {"dlae": 0.6, "ridge_map": 0.4}, {"ridge_map": 1.0}).fit(split.train)


@pytest.fixture(scope="module")
def artifact(split: DemoSplit, model: RoutedBlend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    return save_model_artifact(
        model, split.train, root, knowledge=split.knowledge, version="v1", metrics={"ndcg@10": 0.25}
    )


def test_artifact_directory_and_metadata(artifact: Path, split: DemoSplit, model: RoutedBlend) -> None:
    assert artifact.name == "v1" and artifact.parent.name == "hybrid"
    assert sorted(p.name for p in artifact.iterdir()) == ["arrays.npz", "metadata.json"]
    meta = json.loads((artifact / "metadata.json").read_text())
    assert meta["model_name"] == "hybrid"
    assert meta["version"] == "v1"
    assert dt.datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert meta["data_fingerprint"] == data_fingerprint(split.train)
    assert meta["metrics"] == {"ndcg@10": 0.25}
    assert meta["format_version"] == 1
    spec = meta["params"]["spec"]
    assert spec["name"] == "hybrid" and set(spec["children"]) == {"dlae", "ridge_map"}
    assert spec["params"]["cold_weights"] == {"dlae": 0.0, "ridge_map": 1.0}
    assert meta["item_ids"] == split.product_ids
    dims = meta["feature_dims"]
    assert dims["user_features"] == split.train.user_features.shape[1]
    assert dims["n_items"] == split.train.n_items
    assert dims["topic_dim"] == split.knowledge.n_topics


def test_ranker_scores_exactly_like_the_model(artifact: Path, split: DemoSplit, model: RoutedBlend) -> None:
    ranker = ProductRanker.load(artifact)
    assert ranker.n_products == split.train.n_items
    assert ranker.feature_dim == split.train.user_features.shape[1]
    warm = np.flatnonzero(~split.cold_start)[:3]
    cold = np.flatnonzero(split.cold_start)[:3]
    for u in np.concatenate([warm, cold]):
        history = split.train.interactions[u].indices.tolist()
        expected = model.score(np.array([u]), split.train)[0]
        got = ranker.score(split.train.user_features[u], history)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    batch = ranker.score(split.train.user_features[cold])
    assert batch.shape == (len(cold), ranker.n_products)
    # the batch path scores any histories, here those of warm and cold users at once
    users = np.concatenate([warm, cold])
    np.testing.assert_allclose(
        ranker.score_batch(split.train.interactions[users], split.train.user_features[users]),
        model.score(users, split.train),
        rtol=1e-5,
        atol=1e-5,
    )
    # the baseline is the training popularity
    counts = np.asarray(split.train.interactions.sum(axis=0)).ravel() / split.train.n_users
    np.testing.assert_allclose(ranker.arrays[BASELINE], counts, rtol=1e-6)


def test_rank_returns_explained_products_best_first_without_held_products(
    artifact: Path, split: DemoSplit
) -> None:
    ranker = ProductRanker.load(artifact)
    u = int(np.flatnonzero(~split.cold_start)[0])
    history = split.train.interactions[u].indices.tolist()
    ranked = ranker.rank(split.train.user_features[u], k=5, history=history)
    assert len(ranked) == 5
    assert all(isinstance(r, RankedProduct) for r in ranked)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert not {r.index for r in ranked} & set(history)
    for r in ranked:
        assert r.product_id == split.product_ids[r.index]
        assert r.explanation is not None
        assert r.explanation["product_index"] == r.index
        assert set(r.explanation) == {"product_index", "topics", "keywords", "courses"}
        assert r.to_dict()["product_id"] == r.product_id
    plain = ranker.rank(split.train.user_features[u], k=5, history=history, explain=False)
    assert [r.index for r in plain] == [r.index for r in ranked]
    assert all(r.explanation is None for r in plain)


def test_bad_requests_are_rejected(artifact: Path, split: DemoSplit) -> None:
    ranker = ProductRanker.load(artifact)
    feats = split.train.user_features[0]
    with pytest.raises(ValueError, match="profile_features"):
        ranker.rank(feats[:-1])
    with pytest.raises(ValueError, match="history"):
        ranker.rank(feats, history=[ranker.n_products])
    with pytest.raises(ValueError, match="k must be"):
        ranker.rank(feats, k=0)
    with pytest.raises(ValueError, match="one profile"):
        ranker.rank(np.vstack([feats, feats]))
    bad = feats.copy()
    bad[0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        ranker.score(bad)


def test_versions_are_not_overwritten_by_accident(
    split: DemoSplit, model: RoutedBlend, tmp_path: Path
) -> None:
    first = save_model_artifact(model, split.train, tmp_path, version="2024.1")
    with pytest.raises(ArtifactError, match="already exists"):
        save_model_artifact(model, split.train, tmp_path, version="2024.1")
    again = save_model_artifact(model, split.train, tmp_path, version="2024.1", overwrite=True)
    assert again == first
    auto = save_model_artifact(model, split.train, tmp_path)  # timestamped default version
    assert auto.name.endswith(data_fingerprint(split.train).split(":")[1][:8])
    with pytest.raises(ArtifactError, match="version"):
        save_model_artifact(model, split.train, tmp_path, version="../escape")
    with pytest.raises(ArtifactError, match="not fitted"):
        save_model_artifact(DLAE(), split.train, tmp_path)
    # without the topic space the ranker still ranks, just without explanations
    ranked = ProductRanker.load(first).rank(split.train.user_features[1], k=3)
    assert len(ranked) == 3 and all(r.explanation is None for r in ranked)


def test_broken_artifacts_fail_clearly(artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not an artifact directory"):
        load_artifact(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "metadata.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"arrays\.npz"):
        load_artifact(tmp_path / "half")
    arrays, meta = load_artifact(artifact)
    meta.format_version = 99
    newer = save_artifact(tmp_path / "newer", arrays, meta)
    with pytest.raises(ArtifactError, match="format_version"):
        load_artifact(newer)
    with pytest.raises(ArtifactError, match="object"):
        save_artifact(
            tmp_path / "obj",
            {"x": np.array([{"a": 1}], dtype=object)},
            ArtifactMetadata("m", "v1", "now", "sha256:0", {}),
        )
    other = save_artifact(
        tmp_path / "other", {"x": np.zeros(2)}, ArtifactMetadata("ease", "v1", "now", "sha256:0", {})
    )
    with pytest.raises(ArtifactError, match="spec"):
        ProductRanker.load(other)


def test_fingerprint_tracks_the_data(split: DemoSplit) -> None:
    data = split.train
    same = InteractionData(data.interactions.copy(), data.item_features.copy(), data.user_features.copy())
    assert data_fingerprint(same) == data_fingerprint(data)
    changed = data.interactions.copy().tolil()
    changed[0, 0] = 1.0 - changed[0, 0]
    other = InteractionData(sp.csr_matrix(changed), data.item_features, data.user_features)
    assert data_fingerprint(other) != data_fingerprint(data)


def test_topic_space_survives_the_round_trip(split: DemoSplit) -> None:
    restored = knowledge_from_arrays(knowledge_arrays(split.knowledge))
    np.testing.assert_allclose(restored.product_topics, split.knowledge.product_topics)
    np.testing.assert_allclose(restored.course_topics, split.knowledge.course_topics)
    assert list(restored.terms) == list(split.knowledge.terms)
    with pytest.raises(NotImplementedError, match="new text"):
        restored.transform(["index funds"])
