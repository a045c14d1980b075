"""Knowledge association: courses and products share one LSA topic space that makes sense."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.data.demo import DemoWorld
from recommender.knowledge import KnowledgeSpace, analyze


@pytest.fixture(scope="module")
def space(world: DemoWorld) -> KnowledgeSpace:
    ds = world.dataset
    return KnowledgeSpace.fit(ds.item_texts(), ds.product_texts(), n_topics=32, seed=0)


def test_topic_vectors_are_unit_length_and_aligned(space: KnowledgeSpace, world: DemoWorld) -> None:
    assert space.course_topics.shape == (len(world.dataset.items), 32)
    assert space.product_topics.shape == (len(world.dataset.products), 32)
    np.testing.assert_allclose(np.linalg.norm(space.course_topics, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(space.product_topics, axis=1), 1.0, atol=1e-9)
    again = space.transform(world.dataset.product_texts()[:3])
    np.testing.assert_allclose(again, space.product_topics[:3], atol=1e-9)


def test_retirement_course_is_closer_to_pension_than_guitar_course(
    space: KnowledgeSpace, world: DemoWorld
) -> None:
    items, products = world.dataset.items, world.dataset.products
    retirement = int(np.flatnonzero(items["title"].to_numpy() == "Retirement Planning")[0])
    guitar = int(np.flatnonzero(items["title"].str.contains("Guitar", case=False).to_numpy())[0])
    pensions = np.flatnonzero(products["kind"].to_numpy() == "pension")
    for p in pensions:
        to_retirement = space.course_topics[retirement] @ space.product_topics[p]
        to_guitar = space.course_topics[guitar] @ space.product_topics[p]
        assert to_retirement > to_guitar + 0.2, products["name"].iloc[p]


def test_every_product_has_associated_courses_keywords_and_topics(
    space: KnowledgeSpace, world: DemoWorld
) -> None:
    assocs = space.all_associations(k_courses=5, k_keywords=8)
    assert len(assocs) == len(world.dataset.products)
    for p, assoc in enumerate(assocs):
        assert len(assoc.courses) == 5
        sims = [s for _, s in assoc.courses]
        assert sims == sorted(sims, reverse=True)
        np.testing.assert_allclose(sims[0], (space.course_topics @ space.product_topics[p]).max())
        assert 0 < len(assoc.keywords) <= 8
        assert assoc.topics and all(w > 0 for _, w in assoc.topics)
        assert set(assoc.to_dict()) == {"courses", "keywords", "topics"}


def test_association_of_a_pension_product_speaks_about_retirement(
    space: KnowledgeSpace, world: DemoWorld
) -> None:
    products, items = world.dataset.products, world.dataset.items
    p = int(np.flatnonzero(products["name"].str.contains("Retirement Savings Plan").to_numpy())[0])
    assoc = space.associations(p)
    assert "retirement" in assoc.keywords
    titles = " ".join(items["title"].iloc[[c for c, _ in assoc.courses]]).lower()
    assert "retire" in titles or "pension" in titles


def test_topic_labels_and_keywords_are_readable(space: KnowledgeSpace) -> None:
    labels = space.topic_labels()
    assert len(labels) == space.n_topics
    assert all(label and " / " in label for label in labels)
    # a family/health topic exists among the labels
    assert any("health" in label or "family" in label for label in labels)
    text = "Index fund investing: diversification, risk and retirement savings"
    words = space.keywords(text, k=5)
    assert len(words) == 5
    assert set(words) <= set(analyze(text, frozenset({"and"})))
    covered: set[str] = set()
    for term in words:  # no keyword merely repeats words of stronger ones ("fund" after "index fund")
        assert not set(term.split()) <= covered, (term, words)
        covered |= set(term.split())
    assert set(space.keywords(0, k=3, kind="product")) <= set(space.terms)


def test_unknown_text_maps_to_zero_vector(space: KnowledgeSpace) -> None:
    assert np.all(space.transform(["zzzz qqqq"]) == 0.0)
    with pytest.raises(TypeError):
        space.transform("a single string")


def test_fit_is_deterministic_and_clamps_topics() -> None:
    courses = [
        "index fund investing and retirement",
        "guitar chords for beginners",
        "family health and fitness",
    ]
    products = ["pension plan for retirement", "family life cover"]
    a = KnowledgeSpace.fit(courses, products, n_topics=50, seed=1)
    b = KnowledgeSpace.fit(courses, products, n_topics=50, seed=1)
    assert a.n_topics == 4  # at most n_documents - 1
    np.testing.assert_array_equal(a.course_topics, b.course_topics)
    np.testing.assert_array_equal(a.product_topics, b.product_topics)
    with pytest.raises(ValueError, match="at least one"):
        KnowledgeSpace.fit([], products)
    with pytest.raises(IndexError):
        a.associations(5)


def test_bigrams_do_not_cross_punctuation() -> None:
    grams = analyze("Medical costs, fitness and critical illness.", frozenset({"and"}))
    assert "medical costs" in grams and "critical illness" in grams
    assert "costs fitness" not in grams
