"""The demo world: deterministic, schema-valid, built on the real catalogue, and its truth is recoverable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from recommender.data import validate_dataset
from recommender.data.demo import (
    STAGES,
    THEMES,
    DemoSplit,
    DemoWorld,
    demo_interaction_data,
    generate_demo_world,
    udemy_catalogue,
)
from recommender.models.content import ContentCosine
from recommender.models.popularity import Popularity
from recommender.paths import DATA_DIR_ENV


def test_same_seed_same_world_other_seed_other_world() -> None:
    a = generate_demo_world(seed=11, n_users=150, n_courses=60, n_products=12)
    b = generate_demo_world(seed=11, n_users=150, n_courses=60, n_products=12)
    c = generate_demo_world(seed=12, n_users=150, n_courses=60, n_products=12)
    for name, frame in a.dataset.tables().items():
        pd.testing.assert_frame_equal(frame, getattr(b.dataset, name), obj=name)
    np.testing.assert_array_equal(a.truth.interests, b.truth.interests)
    np.testing.assert_array_equal(a.truth.product_affinity, b.truth.product_affinity)
    assert not a.dataset.interactions.equals(c.dataset.interactions)
    assert a.dataset.users["user_id"].tolist() != c.dataset.users["user_id"].tolist()


def test_world_is_schema_valid_and_sized(small_world: DemoWorld) -> None:
    ds = small_world.dataset
    again = validate_dataset(ds)
    pd.testing.assert_frame_equal(again.interactions, ds.interactions)
    assert len(ds.users) == 300
    assert len(ds.products) == 18
    assert (ds.items["kind"] == "course").sum() == 120
    assert set(ds.items["kind"]) == {"course", "ebook", "audio"}
    assert set(ds.products["kind"]) == {"wealth", "pension", "health", "life", "property", "accident"}
    assert set(ds.interactions["event"]) == {"view", "purchase", "completion", "rating"}
    assert ds.users["user_id"].str.fullmatch(r"u_[0-9a-f]{12}").all()


def test_course_titles_prices_and_levels_come_from_the_catalogue(small_world: DemoWorld) -> None:
    catalogue = udemy_catalogue()
    courses = small_world.dataset.items[small_world.dataset.items["kind"] == "course"]
    by_title = catalogue.set_index(catalogue["course_title"].str.strip())
    assert set(courses["title"]) <= set(by_title.index)
    merged = courses.join(by_title[["price", "subject"]], on="title", rsuffix="_udemy")
    np.testing.assert_allclose(merged["price"], merged["price_udemy"])
    assert (merged["category"] == merged["subject"]).all()
    assert set(courses["category"]) <= {
        "Business Finance",
        "Web Development",
        "Musical Instruments",
        "Graphic Design",
    }
    # descriptions are generated from the title plus topic vocabulary
    assert all(d.startswith(t) for t, d in zip(courses["title"], courses["description"], strict=True))


def test_products_speak_the_vocabulary_of_finance_courses(small_world: DemoWorld) -> None:
    text = " ".join(small_world.dataset.products["description"]).lower()
    for phrase in ("index fund", "retirement", "risk", "family protection", "critical illness", "mortgage"):
        assert phrase in text, phrase


def test_course_behaviour_is_a_consistent_funnel(small_world: DemoWorld) -> None:
    inter = small_world.dataset.interactions
    first = inter.groupby(["user_id", "item_id", "event"])["timestamp"].min().unstack()
    completed = first[first["completion"].notna()]
    assert completed["purchase"].notna().all()
    assert (completed["purchase"] <= completed["completion"]).all()
    assert (first["purchase"].dropna() >= first.loc[first["purchase"].notna(), "view"]).all()
    ratings = inter.loc[inter["event"] == "rating", "value"]
    assert ratings.between(1, 5).all() and (ratings % 1 == 0).all()
    assert inter["timestamp"].is_monotonic_increasing


def test_truth_is_consistent(small_world: DemoWorld) -> None:
    t = small_world.truth
    n_users, n_products = len(small_world.dataset.users), len(small_world.dataset.products)
    assert t.interests.shape == (n_users, len(THEMES))
    np.testing.assert_allclose(t.interests.sum(axis=1), 1.0)
    assert t.product_affinity.shape == (n_users, n_products)
    assert set(t.life_stage) <= set(STAGES)
    assert set(t.topics) == set(THEMES)
    disclosed = small_world.dataset.users["life_stage"].notna().to_numpy()
    assert (small_world.dataset.users["life_stage"].to_numpy()[disclosed] == t.life_stage[disclosed]).all()


def test_course_choices_follow_latent_interests(world: DemoWorld) -> None:
    """The share of a user's views per theme tracks their true interest in that theme."""
    ds, t = world.dataset, world.truth
    views = ds.interactions[ds.interactions["event"] == "view"]
    users = pd.Index(ds.users["user_id"]).get_indexer(views["user_id"])
    items = pd.Index(ds.items["item_id"]).get_indexer(views["item_id"])
    theme_of_item = t.item_themes / t.item_themes.sum(axis=1, keepdims=True)
    share = np.zeros_like(t.interests)
    np.add.at(share, users, theme_of_item[items])
    share /= share.sum(axis=1, keepdims=True)
    for j, theme in enumerate(THEMES):
        assert np.corrcoef(share[:, j], t.interests[:, j])[0, 1] > 0.5, theme


def test_conversions_follow_true_affinity(world: DemoWorld) -> None:
    """Converted products sit high in the user's true affinity ranking (0.5 would be chance)."""
    ds, t = world.dataset, world.truth
    users = pd.Index(ds.users["user_id"]).get_indexer(ds.conversions["user_id"])
    products = pd.Index(ds.products["product_id"]).get_indexer(ds.conversions["product_id"])
    ranks = (t.product_affinity[users] < t.product_affinity[users, products][:, None]).mean(axis=1)
    assert ranks.mean() > 0.7


def test_split_is_temporal_and_cold_start_dominates(world: DemoWorld, world_split: DemoSplit) -> None:
    s = world_split
    n_users, n_products = len(world.dataset.users), len(world.dataset.products)
    assert s.train.interactions.shape == s.test.shape == (n_users, n_products)
    assert s.train.interactions.multiply(s.test).nnz == 0
    assert (s.train_dataset.conversions["timestamp"] < s.cutoff).all()
    assert (s.train_dataset.interactions["timestamp"] < s.cutoff).all()
    assert len(s.cold_eval_users) > len(s.warm_eval_users) > 0
    assert s.cold_start[s.cold_eval_users].all()
    assert np.diff(s.train.interactions.indptr)[s.cold_eval_users].sum() == 0
    # features: product topics for items, the course profile (topics first) for users
    assert s.train.item_features is not None and s.train.user_features is not None
    assert s.train.item_features.shape == (n_products, s.knowledge.n_topics)
    np.testing.assert_allclose(s.train.user_features[:, : s.knowledge.n_topics], s.profiles.topics, atol=1e-6)
    assert s.train.meta["user_topic_dim"] == s.knowledge.n_topics
    held_out = s.test.sum() / (s.test.sum() + s.train.interactions.sum())
    assert 0.2 < held_out < 0.4


def test_profiles_use_only_the_training_period(world: DemoWorld, world_split: DemoSplit) -> None:
    """User features equal profiles rebuilt from pre-cutoff events and differ from all-time profiles."""
    s = world_split
    inter = world.dataset.interactions
    before = s.profile_builder.transform(inter[inter["timestamp"] < s.cutoff], s.user_ids)
    np.testing.assert_allclose(s.profiles.features, before)
    all_time = s.profile_builder.transform(inter, s.user_ids)
    late_users = inter.loc[inter["timestamp"] >= s.cutoff, "user_id"].unique()
    rows = [s.user_ids.index(u) for u in late_users]
    assert len(rows) > 0
    assert not np.allclose(all_time[rows], s.profiles.features[rows])


def test_cold_start_users_are_served_by_knowledge_transfer(world: DemoWorld, world_split: DemoSplit) -> None:
    """For users with no product history, course-profile content scores track the true theme affinity far
    better than popularity does (popularity is the same list for everyone)."""
    s = world_split
    users = s.cold_eval_users
    content = ContentCosine().fit(s.train).score(users, s.train)
    popularity = Popularity().fit(s.train).score(users, s.train)
    assert np.ptp(content, axis=1).min() > 0  # cold-start users get real, user-specific scores
    # the part of the true affinity that text can carry: interests x product themes
    theme_part = world.truth.interests @ world.truth.product_themes.T
    content_rho = np.nanmean([spearmanr(a, b)[0] for a, b in zip(content, theme_part[users], strict=True)])
    pop_rho = np.nanmean([spearmanr(a, b)[0] for a, b in zip(popularity, theme_part[users], strict=True)])
    assert content_rho > 0.3
    assert content_rho > pop_rho + 0.2


def test_missing_catalogue_fails_with_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        generate_demo_world(seed=0, n_users=10, n_courses=5, n_products=6)
    assert str(tmp_path / "courses" / "udemy_courses.csv") in str(info.value)


def test_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="one per product kind"):
        generate_demo_world(seed=0, n_users=10, n_courses=5, n_products=3)
    with pytest.raises(ValueError, match="exceeds"):
        generate_demo_world(seed=0, n_users=10, n_courses=100_000, n_products=6)


def test_split_rejects_bad_fraction(small_world: DemoWorld) -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        demo_interaction_data(small_world, test_fraction=1.5)
