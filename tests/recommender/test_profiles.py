"""User profiles: topic interests + behaviour, named segments, propensities, cold-start, storage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from recommender.data import KnowledgeDataset
from recommender.data.demo import THEMES, DemoWorld
from recommender.knowledge import KnowledgeSpace
from recommender.profiles import BEHAVIOUR_FEATURES, Profile, ProfileBuilder, UserProfiles


@pytest.fixture(scope="module")
def space(world: DemoWorld) -> KnowledgeSpace:
    return KnowledgeSpace.fit(world.dataset.item_texts(), world.dataset.product_texts(), n_topics=32, seed=0)


@pytest.fixture(scope="module")
def fitted(world: DemoWorld, space: KnowledgeSpace) -> tuple[ProfileBuilder, UserProfiles]:
    builder = ProfileBuilder(space, n_segments=6, seed=0)
    return builder, builder.fit(world.dataset)


def test_layout_topics_first_then_behaviour(
    world: DemoWorld, fitted: tuple[ProfileBuilder, UserProfiles]
) -> None:
    _, profiles = fitted
    n_users = len(world.dataset.users)
    assert profiles.user_ids == world.dataset.users["user_id"].tolist()
    assert profiles.features.shape == (n_users, 32 + len(BEHAVIOUR_FEATURES))
    assert profiles.feature_names[32:] == list(BEHAVIOUR_FEATURES)
    norms = np.linalg.norm(profiles.topics, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-9)
    beh = pd.DataFrame(profiles.behaviour, columns=list(BEHAVIOUR_FEATURES))
    assert beh["completion_rate"].between(0, 1).all()
    assert beh["recency"].between(0, 1).all()
    assert beh["breadth"].between(0, 1).all()


def test_behaviour_features_match_a_hand_count(
    world: DemoWorld, fitted: tuple[ProfileBuilder, UserProfiles]
) -> None:
    _, profiles = fitted
    inter = world.dataset.interactions
    uid = inter["user_id"].value_counts().index[0]
    mine = inter[inter["user_id"] == uid]
    row = profiles.profile(uid).behaviour
    assert row["engagement"] == pytest.approx(np.log1p(len(mine)))
    assert row["spend"] == pytest.approx(np.log1p(mine.loc[mine["event"] == "purchase", "value"].sum()))
    bought = set(mine.loc[mine["event"] == "purchase", "item_id"])
    done = set(mine.loc[mine["event"] == "completion", "item_id"])
    assert row["completion_rate"] == pytest.approx(len(done) / len(bought | done))


def test_segments_have_readable_distinct_names(fitted: tuple[ProfileBuilder, UserProfiles]) -> None:
    _, profiles = fitted
    assert len(profiles.segment_names) == 6
    assert len(set(profiles.segment_names)) == 6
    assert set(np.unique(profiles.segments)) == set(range(6))
    personas = (
        "investors",
        "developers",
        "musicians",
        "designers",
        "entrepreneurs",
        "carers",
        "planners",
        "learners",
    )
    for name in profiles.segment_names:
        assert name.split()[0] in ("engaged", "casual", "regular", "newcomers"), name
        assert any(p in name for p in personas), name


def test_segments_reflect_dominant_interest(
    world: DemoWorld, fitted: tuple[ProfileBuilder, UserProfiles]
) -> None:
    """Users whose true interest is mostly finance land mostly in a finance-named segment, and users mostly
    into creative themes in a musician/designer segment."""
    _, profiles = fitted
    interests = world.truth.interests
    names = np.array(profiles.segment_names)[profiles.segments]
    finance = interests[:, THEMES.index("finance")] > 0.7
    creative = interests[:, THEMES.index("creative")] > 0.7
    assert finance.sum() > 20 and creative.sum() > 20
    finance_named = np.char.find(names.astype(str), "investors") >= 0
    creative_named = (np.char.find(names.astype(str), "musicians") >= 0) | (
        np.char.find(names.astype(str), "designers") >= 0
    )
    assert finance_named[finance].mean() > 0.6
    assert creative_named[creative].mean() > 0.6


def test_propensities_generalise_to_held_out_users(world: DemoWorld, space: KnowledgeSpace) -> None:
    """Fit on half of the users, predict the other half from their course histories only: AUC > 0.6."""
    ds = world.dataset
    users = ds.users["user_id"].to_numpy()
    train = np.random.default_rng(0).random(len(users)) < 0.5
    keep = set(users[train])
    half = KnowledgeDataset(
        users=ds.users[train].reset_index(drop=True),
        items=ds.items,
        interactions=ds.interactions[ds.interactions["user_id"].isin(keep)].reset_index(drop=True),
        products=ds.products,
        conversions=ds.conversions[ds.conversions["user_id"].isin(keep)].reset_index(drop=True),
    )
    builder = ProfileBuilder(space, seed=0)
    builder.fit(half)
    held_out = users[~train]
    predicted = builder.predict_propensities(builder.transform(ds.interactions, held_out))
    kinds = ds.conversions.merge(ds.products[["product_id", "kind"]], on="product_id")
    aucs = {}
    for kind in predicted.columns:
        converted = np.isin(held_out, kinds.loc[kinds["kind"] == kind, "user_id"].unique())
        aucs[kind] = roc_auc_score(converted, predicted[kind])
    assert set(aucs) == set(ds.products["kind"])
    assert np.mean(list(aucs.values())) > 0.6, aucs
    assert min(aucs.values()) > 0.5, aucs


def test_profile_for_reproduces_the_fitted_profile(
    world: DemoWorld, fitted: tuple[ProfileBuilder, UserProfiles]
) -> None:
    builder, profiles = fitted
    uid = profiles.user_ids[7]
    history = world.dataset.interactions[world.dataset.interactions["user_id"] == uid]
    single = builder.profile_for(history, user_id=uid)
    stored = profiles.profile(uid)
    np.testing.assert_allclose(single.features(), stored.features(), atol=1e-9)
    assert single.segment == stored.segment
    assert single.segment_name == profiles.segment_of(uid)
    assert single.propensities == pytest.approx(stored.propensities)


def test_cold_start_profile_from_course_history_alone(
    world: DemoWorld, fitted: tuple[ProfileBuilder, UserProfiles], space: KnowledgeSpace
) -> None:
    """A newcomer who studied retirement and investing: no product history, yet the profile points at
    wealth/pension products and lands in a finance-named segment."""
    builder, profiles = fitted
    items = world.dataset.items
    picks = items[items["title"].str.contains("Retirement|Pension|Index Fund|Invest", regex=True)]["item_id"][
        :6
    ]
    assert len(picks) >= 3
    history = pd.DataFrame(
        {
            "item_id": list(picks) * 2,
            "event": ["view"] * len(picks) + ["completion"] * len(picks),
            "timestamp": ["2023-06-01T10:00:00Z"] * (2 * len(picks)),
        }
    )
    profile = builder.profile_for(history, user_id="u_newcomer")
    kinds = world.dataset.products["kind"].to_numpy()
    closest = np.argsort(-(space.product_topics @ profile.topics))[:3]
    assert set(kinds[closest]) <= {"wealth", "pension"}
    assert profile.segment_name is not None and (
        "investors" in profile.segment_name or "planners" in profile.segment_name
    )
    mean_prop = profiles.propensities.mean()
    assert (
        profile.propensities["wealth"] + profile.propensities["pension"]
        > mean_prop["wealth"] + mean_prop["pension"]
    )


def test_profile_round_trips_and_holds_no_raw_events(fitted: tuple[ProfileBuilder, UserProfiles]) -> None:
    _, profiles = fitted
    profile = profiles.profile(profiles.user_ids[3])
    data = profile.to_dict()
    assert set(data) == {
        "version",
        "user_id",
        "topics",
        "behaviour",
        "segment",
        "segment_name",
        "propensities",
        "n_segments",
    }
    assert data["user_id"] == profiles.user_ids[3]
    text = json.dumps(data)
    for leaked in ("item_id", "timestamp", "event"):
        assert leaked not in text
    back = Profile.from_dict(json.loads(text))
    np.testing.assert_allclose(back.features(), profile.features())
    assert back.segment_name == profile.segment_name
    assert back.propensities == pytest.approx(profile.propensities)


def test_segments_and_propensities_are_ranking_features(fitted: tuple[ProfileBuilder, UserProfiles]) -> None:
    _, profiles = fitted
    kinds = sorted(profiles.propensities.columns)
    n_seg = len(profiles.segment_names)
    width = profiles.features.shape[1]
    assert profiles.model_features.shape == (len(profiles.user_ids), width + len(kinds) + n_seg)
    assert profiles.model_feature_names[width:] == [f"propensity_{k}" for k in kinds] + [
        f"segment_{i}" for i in range(n_seg)
    ]
    for row in (0, 5, 17):
        profile = profiles.profile(profiles.user_ids[row])
        # the single profile's row is the table's row: what serving ranks on is what training saw
        np.testing.assert_allclose(profile.features(), profiles.model_features[row])
        props = profile.features()[width : width + len(kinds)]
        assert props.tolist() == pytest.approx([profile.propensities[k] for k in kinds])
        onehot = profile.features()[width + len(kinds) :]
        assert onehot.sum() == 1.0 and int(np.argmax(onehot)) == profile.segment


def test_a_profile_without_segment_count_ranks_without_segment_columns(
    fitted: tuple[ProfileBuilder, UserProfiles],
) -> None:
    _, profiles = fitted
    data = profiles.profile(profiles.user_ids[0]).to_dict()
    data["n_segments"] = None
    short = Profile.from_dict(data).features()
    assert len(short) == profiles.model_features.shape[1] - len(profiles.segment_names)
    data["n_segments"] = 0
    with pytest.raises(ValueError, match="n_segments"):
        Profile.from_dict(data)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("topics"), "'topics' is missing"),
        (lambda d: d["behaviour"].pop("recency"), "'behaviour.recency' is missing"),
        (lambda d: d.update(topics=["a", "b"]), "'topics' must be a list of numbers"),
        (lambda d: d.update(user_id=""), "'user_id' must be a non-empty string"),
        (lambda d: d.update(version=99), "'version': unsupported version 99"),
    ],
)
def test_profile_from_dict_names_the_bad_field(
    fitted: tuple[ProfileBuilder, UserProfiles], mutate: object, field: str
) -> None:
    data = fitted[1].profile(fitted[1].user_ids[0]).to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=f"profile field {field}"):
        Profile.from_dict(data)


def test_history_errors_name_row_and_column(
    world: DemoWorld, fitted: tuple[ProfileBuilder, UserProfiles]
) -> None:
    builder, _ = fitted
    bad_item = pd.DataFrame({"item_id": ["nope"], "event": ["view"]})
    with pytest.raises(ValueError, match=r"history row 1, column 'item_id': 'nope' is not a known item"):
        builder.profile_for(bad_item)
    item = world.dataset.items["item_id"].iloc[0]
    bad_event = pd.DataFrame({"item_id": [item, item], "event": ["view", "clicked"]})
    with pytest.raises(ValueError, match=r"history row 2, column 'event': 'clicked' is not one of"):
        builder.profile_for(bad_event)
    with pytest.raises(ValueError, match="column 'event' is required"):
        builder.profile_for(pd.DataFrame({"item_id": [item]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        ProfileBuilder(builder.knowledge).profile_for(bad_item)


def test_empty_history_gives_an_empty_but_valid_profile(fitted: tuple[ProfileBuilder, UserProfiles]) -> None:
    builder, _ = fitted
    profile = builder.profile_for(pd.DataFrame({"item_id": [], "event": []}), user_id="u_new")
    assert np.all(profile.topics == 0)
    assert all(v == 0 for v in profile.behaviour.values())
    assert profile.segment is not None
    assert all(0 <= p <= 1 for p in profile.propensities.values())
