"""The fixed tables of the demo world, read once at import from the JSON files in ``demo_world/``.

The tables are what a person tunes when the demo world should tell a different story, so they are data
rather than code:

* ``topics.json``: per theme a readable label and the vocabulary its texts draw on; per course subject
  the vocabulary that replaces its theme's (a guitar course talks about chords, not logos);
* ``population.json``: life-stage shares, the Dirichlet concentrations of interests per life stage
  (before scaling by :data:`recommender.data.demo.INTEREST_CONCENTRATION`), age bands per life stage and
  the regions;
* ``catalogue.json``: the Udemy levels kept and their schema names, the title keywords (regular
  expression alternatives) that mark a business course as finance, the description templates, and the
  titles and title forms of the templated e-books and audio lectures;
* ``products.json``: the product kinds (share of the catalogue, theme and life-stage profile, risk and
  premium ranges, vocabulary, named variants with their own theme/stage deltas) and the brand names.

Themes and life stages are the world's axes and stay in code (:data:`THEMES`, :data:`STAGES`): every
name in the files must be one of them, and every table keyed by them must cover all of them, so an edit
that misspells a name fails at import with the file and the entry named.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import numpy as np

THEMES: tuple[str, ...] = ("finance", "business", "tech", "creative", "health")
STAGES: tuple[str, ...] = ("student", "young_professional", "family", "pre_retirement")

TABLES_PACKAGE = "recommender.data"
TABLES_FOLDER = "demo_world"


@dataclass(frozen=True)
class TopicDefinition:
    """A latent theme: its name, a readable label and the vocabulary its texts draw on."""

    name: str
    label: str
    vocabulary: tuple[str, ...]


@dataclass(frozen=True)
class ProductVariant:
    """A named product of a kind, with the sentence that opens its description."""

    name: str
    sentence: str
    theme_delta: dict[str, float] = field(default_factory=dict)
    stage_delta: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductKind:
    """A kind of financial product and what its instances share."""

    kind: str
    share: float
    themes: dict[str, float]
    stages: dict[str, float]
    risk: tuple[int, int]
    premium: tuple[float, float]
    generic: tuple[str, ...]
    vocabulary: tuple[str, ...]
    variants: tuple[ProductVariant, ...]


@dataclass(frozen=True)
class Population:
    """Who the users are: ``stage_interest`` is (len(STAGES), len(THEMES)), rows in STAGES order."""

    stage_probability: np.ndarray
    stage_interest: np.ndarray
    stage_age_bands: dict[str, tuple[tuple[str, float], ...]]
    regions: tuple[str, ...]


@dataclass(frozen=True)
class CatalogueText:
    """The text material of the knowledge catalogue (courses, e-books, audio lectures)."""

    levels: dict[str, str]
    finance_title: re.Pattern[str]
    description_templates: tuple[str, ...]
    planning_topics: tuple[str, ...]
    health_topics: tuple[str, ...]
    ebook_forms: tuple[str, ...]
    audio_forms: tuple[str, ...]
    derived_ebook_forms: tuple[str, ...]
    derived_audio_forms: tuple[str, ...]


class _Table:
    """One JSON file, with typed accessors whose errors name the file and the entry."""

    def __init__(self, folder: Traversable, name: str) -> None:
        self.label = f"{folder.name}/{name}"
        try:
            raw = json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"demo world table {self.label} cannot be read: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{self.where()}: expected a JSON object at the top level")
        self.raw: dict[str, Any] = raw

    def where(self, *keys: object) -> str:
        return self.label + "".join(f"[{k!r}]" for k in keys)

    def get(self, *keys: object) -> Any:
        value: Any = self.raw
        for depth, key in enumerate(keys):
            container_ok = isinstance(value, dict) if isinstance(key, str) else isinstance(value, list)
            if not container_ok or (isinstance(value, dict) and key not in value):
                raise ValueError(f"{self.where(*keys[: depth + 1])} is missing")
            value = value[key]
        return value

    def strings(self, *keys: object) -> tuple[str, ...]:
        value = self.get(*keys)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{self.where(*keys)} must be a non-empty list of strings")
        return tuple(value)

    def numbers(self, *keys: object) -> tuple[float, ...]:
        value = self.get(*keys)
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            raise ValueError(f"{self.where(*keys)} must be a list of numbers")
        return tuple(value)

    def weights(self, *keys: object, axis: tuple[str, ...], complete: bool = False) -> dict[str, float]:
        """A ``{name: number}`` object over ``axis`` (every name present when ``complete``)."""
        value = self.get(*keys)
        if not isinstance(value, dict) or not all(_is_number(v) for v in value.values()):
            raise ValueError(f"{self.where(*keys)} must map names to numbers")
        unknown = [k for k in value if k not in axis]
        if unknown:
            raise ValueError(f"{self.where(*keys)}: unknown names {unknown}; expected some of {list(axis)}")
        missing = [k for k in axis if k not in value]
        if complete and missing:
            raise ValueError(f"{self.where(*keys)}: missing {missing}")
        return dict(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _topics(folder: Traversable) -> tuple[dict[str, TopicDefinition], dict[str, tuple[str, ...]]]:
    table = _Table(folder, "topics.json")
    names = tuple(table.get("topics"))
    if names != THEMES:
        raise ValueError(f"{table.where('topics')} must list the themes {list(THEMES)} in this order")
    topics = {
        name: TopicDefinition(
            name, str(table.get("topics", name, "label")), table.strings("topics", name, "vocabulary")
        )
        for name in THEMES
    }
    subjects = {
        subject: table.strings("subject_vocabulary", subject) for subject in table.get("subject_vocabulary")
    }
    return topics, subjects


def _population(folder: Traversable) -> Population:
    table = _Table(folder, "population.json")
    share = table.weights("stage_probability", axis=STAGES, complete=True)
    if min(share.values()) < 0 or abs(sum(share.values()) - 1.0) > 1e-9:
        raise ValueError(f"{table.where('stage_probability')} must be non-negative and sum to 1")
    interest = [table.weights("stage_interest", s, axis=THEMES, complete=True) for s in STAGES]
    bands = {}
    for stage in STAGES:
        raw = table.get("stage_age_bands", stage)
        if not isinstance(raw, dict) or not raw or not all(_is_number(p) for p in raw.values()):
            raise ValueError(f"{table.where('stage_age_bands', stage)} must map age bands to weights")
        bands[stage] = tuple((str(band), p) for band, p in raw.items())
    return Population(
        stage_probability=np.array([share[s] for s in STAGES]),
        stage_interest=np.array([[row[t] for t in THEMES] for row in interest]),
        stage_age_bands=bands,
        regions=table.strings("regions"),
    )


def _catalogue(folder: Traversable) -> CatalogueText:
    table = _Table(folder, "catalogue.json")
    levels = table.get("levels")
    if not isinstance(levels, dict) or not all(isinstance(v, str) for v in levels.values()):
        raise ValueError(f"{table.where('levels')} must map Udemy levels to schema levels")
    return CatalogueText(
        levels=dict(levels),
        finance_title=re.compile("|".join(table.strings("finance_title_keywords")), re.IGNORECASE),
        description_templates=table.strings("description_templates"),
        planning_topics=table.strings("planning_topics"),
        health_topics=table.strings("health_topics"),
        ebook_forms=table.strings("ebook_forms"),
        audio_forms=table.strings("audio_forms"),
        derived_ebook_forms=table.strings("derived_ebook_forms"),
        derived_audio_forms=table.strings("derived_audio_forms"),
    )


def _products(folder: Traversable) -> tuple[tuple[ProductKind, ...], tuple[str, ...]]:
    table = _Table(folder, "products.json")
    kinds = []
    for i in range(len(table.get("kinds"))):
        at = ("kinds", i)
        variants = []
        for j, variant in enumerate(table.get(*at, "variants")):
            v_at = (*at, "variants", j)
            variants.append(
                ProductVariant(
                    name=str(table.get(*v_at, "name")),
                    sentence=str(table.get(*v_at, "sentence")),
                    theme_delta=table.weights(*v_at, "themes", axis=THEMES) if "themes" in variant else {},
                    stage_delta=table.weights(*v_at, "stages", axis=STAGES) if "stages" in variant else {},
                )
            )
        risk = table.numbers(*at, "risk_level")
        premium = table.numbers(*at, "min_premium")
        if len(risk) != 2 or len(premium) != 2:
            raise ValueError(f"{table.where(*at)}: risk_level and min_premium must be [low, high] pairs")
        kinds.append(
            ProductKind(
                kind=str(table.get(*at, "kind")),
                share=float(table.get(*at, "share")),
                themes=table.weights(*at, "themes", axis=THEMES),
                stages=table.weights(*at, "stages", axis=STAGES),
                risk=(int(risk[0]), int(risk[1])),
                premium=(float(premium[0]), float(premium[1])),
                generic=table.strings(*at, "generic"),
                vocabulary=table.strings(*at, "vocabulary"),
                variants=tuple(variants),
            )
        )
    if not kinds:
        raise ValueError(f"{table.where('kinds')} lists no product kind")
    return tuple(kinds), table.strings("brands")


@dataclass(frozen=True)
class DemoTables:
    """Everything the files hold, typed and checked."""

    topics: dict[str, TopicDefinition]
    subject_vocabulary: dict[str, tuple[str, ...]]
    population: Population
    catalogue_text: CatalogueText
    product_kinds: tuple[ProductKind, ...]
    brands: tuple[str, ...]


def default_folder() -> Traversable:
    """The folder of the tables shipped with the package."""
    return resources.files(TABLES_PACKAGE).joinpath(TABLES_FOLDER)


def load_tables(folder: Traversable | None = None) -> DemoTables:
    """Read and check the four tables from ``folder`` (default: the shipped ones).

    Raises :class:`ValueError` naming the file and the entry when a table is unreadable, misses an
    entry, has a value of the wrong type or names a theme or life stage that does not exist.
    """
    folder = default_folder() if folder is None else folder
    topics, subjects = _topics(folder)
    kinds, brands = _products(folder)
    return DemoTables(
        topics=topics,
        subject_vocabulary=subjects,
        population=_population(folder),
        catalogue_text=_catalogue(folder),
        product_kinds=kinds,
        brands=brands,
    )


TABLES: DemoTables = load_tables()
#: Theme name -> its definition, in :data:`THEMES` order.
TOPICS: dict[str, TopicDefinition] = TABLES.topics
#: Course subject -> the vocabulary its creative courses use instead of the theme's.
SUBJECT_VOCABULARY: dict[str, tuple[str, ...]] = TABLES.subject_vocabulary
POPULATION: Population = TABLES.population
CATALOGUE_TEXT: CatalogueText = TABLES.catalogue_text
PRODUCT_KINDS: tuple[ProductKind, ...] = TABLES.product_kinds
BRANDS: tuple[str, ...] = TABLES.brands
