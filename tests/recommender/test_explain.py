"""Explanations name the topic, keywords and the learner's own courses that drive a recommendation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.data.demo import DemoWorld
from recommender.explain import explain, explain_many
from recommender.knowledge import KnowledgeSpace


@pytest.fixture(scope="module")
def space(world: DemoWorld) -> KnowledgeSpace:
    return KnowledgeSpace.fit(world.dataset.item_texts(), world.dataset.product_texts(), n_topics=32, seed=0)


def indices_where(values: np.ndarray, pattern: str) -> np.ndarray:
    return np.flatnonzero(np.char.find(np.char.lower(values.astype(str)), pattern) >= 0)


def test_explanation_contains_the_driving_topic_and_course(space: KnowledgeSpace, world: DemoWorld) -> None:
    items, products = world.dataset.items, world.dataset.products
    retirement = indices_where(items["title"].to_numpy(), "retirement")[:2]
    guitar = indices_where(items["title"].to_numpy(), "guitar")[:2]
    courses = np.concatenate([retirement, guitar])
    profile = space.course_topics[courses].sum(axis=0)
    profile /= np.linalg.norm(profile)
    pension = int(indices_where(products["name"].to_numpy(), "retirement savings plan")[0])

    exp = explain(profile, pension, space, courses, k=3)

    # the driving topic pole (positive or negative end of an LSA axis), labelled by the pension's own terms
    contributions = space.poles(profile) * space.poles(space.product_topics[pension])
    driving = int(np.argmax(contributions))
    label, weight = exp.topics[0]
    pole = space.pole_components[driving]
    own_terms = space.product_tfidf[pension].indices
    strongest = own_terms[np.argmax(pole[own_terms] * space.product_tfidf[pension].data)]
    assert str(space.terms[strongest]) in label.split(" / ")
    assert weight >= float(contributions.max()) - 1e-12
    assert "retirement" in label
    assert [w for _, w in exp.topics] == sorted((w for _, w in exp.topics), reverse=True)
    # the learner's retirement course, not the guitar course, is the closest of their courses
    assert exp.courses[0][0] in set(retirement.tolist())
    assert {c for c, _ in exp.courses} <= set(courses.tolist())
    np.testing.assert_allclose(
        exp.courses[0][1], (space.course_topics[courses] @ space.product_topics[pension]).max(), atol=1e-12
    )
    assert "retirement" in exp.keywords
    # keywords are product terms shared with the driving topics or the learner's courses
    product_terms = {str(t) for t in space.terms[space.product_tfidf[pension].indices]}
    assert set(exp.keywords) <= product_terms


def test_vectorised_variant_matches_single_calls(space: KnowledgeSpace, world: DemoWorld) -> None:
    courses = np.array([0, 5, 9, 40])
    profile = space.course_topics[courses].mean(axis=0)
    products = np.arange(len(world.dataset.products))
    many = explain_many(profile, products, space, courses, k=2, k_keywords=4)
    assert [e.product_index for e in many] == products.tolist()
    for p in (0, 7, len(products) - 1):
        single = explain(profile, int(p), space, courses, k=2, k_keywords=4)
        assert single.product_index == many[p].product_index
        assert single.keywords == many[p].keywords
        assert [t for t, _ in single.topics] == [t for t, _ in many[p].topics]
        assert [w for _, w in single.topics] == pytest.approx([w for _, w in many[p].topics])
        assert [c for c, _ in single.courses] == [c for c, _ in many[p].courses]
        assert [s for _, s in single.courses] == pytest.approx([s for _, s in many[p].courses])
        assert len(single.courses) == 2 and len(single.keywords) <= 4 and len(single.topics) <= 2


def test_explanation_serialises(space: KnowledgeSpace) -> None:
    exp = explain(space.course_topics[3], 0, space, [3, 4])
    data = json.loads(json.dumps(exp.to_dict()))
    assert data["product_index"] == 0
    assert [c["course_index"] for c in data["courses"]] == [c for c, _ in exp.courses]
    assert [t["topic"] for t in data["topics"]] == [t for t, _ in exp.topics]


def test_without_course_history_only_topics_explain(space: KnowledgeSpace) -> None:
    profile = space.product_topics[2]
    exp = explain(profile, 2, space, [])
    assert exp.courses == []
    assert exp.topics and exp.keywords
    # a full profile row (topics then behaviour features) is accepted too
    row = np.concatenate([profile, [3.0, 4.0, 0.5, 0.9, 0.2]])
    assert explain(row, 2, space, []) == exp


def test_bad_input_is_rejected(space: KnowledgeSpace) -> None:
    with pytest.raises(IndexError, match="product indices"):
        explain(space.course_topics[0], space.n_products, space, [])
    with pytest.raises(IndexError, match="course indices"):
        explain(space.course_topics[0], 0, space, [space.n_courses])
    with pytest.raises(ValueError, match="topics"):
        explain(np.zeros(3), 0, space, [])
