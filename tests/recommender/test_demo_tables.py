"""The demo world's tables: read from the JSON files shipped in the package, checked, and what worlds use."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommender.data.demo import DemoWorld
from recommender.data.demo_tables import (
    STAGES,
    TABLES,
    THEMES,
    DemoTables,
    default_folder,
    load_tables,
)

FILES = ("topics.json", "population.json", "catalogue.json", "products.json")


def copy_tables(tmp_path: Path) -> Path:
    folder = tmp_path / "demo_world"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_text(
            default_folder().joinpath(name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    return folder


def assert_same_tables(a: DemoTables, b: DemoTables) -> None:
    for f in dataclasses.fields(DemoTables):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if f.name == "population":
            for g in dataclasses.fields(left):
                x, y = getattr(left, g.name), getattr(right, g.name)
                if isinstance(x, np.ndarray):
                    np.testing.assert_array_equal(x, y)
                else:
                    assert x == y, g.name
        else:
            assert left == right, f.name


def test_the_shipped_tables_cover_the_world_axes() -> None:
    assert tuple(TABLES.topics) == THEMES
    assert all(t.vocabulary for t in TABLES.topics.values())
    pop = TABLES.population
    assert pop.stage_interest.shape == (len(STAGES), len(THEMES)) and (pop.stage_interest > 0).all()
    assert pop.stage_probability.shape == (len(STAGES),)
    np.testing.assert_allclose(pop.stage_probability.sum(), 1.0)
    assert set(pop.stage_age_bands) == set(STAGES)
    assert {k.kind for k in TABLES.product_kinds} == {
        "wealth",
        "pension",
        "health",
        "life",
        "property",
        "accident",
    }
    assert all(k.share > 0 and k.variants for k in TABLES.product_kinds)
    assert all(
        set(v.theme_delta) <= set(THEMES) and set(v.stage_delta) <= set(STAGES)
        for k in TABLES.product_kinds
        for v in k.variants
    )


def test_a_copy_of_the_files_loads_to_the_same_tables(tmp_path: Path) -> None:
    assert_same_tables(load_tables(copy_tables(tmp_path)), TABLES)


def test_worlds_are_drawn_from_the_tables(small_world: DemoWorld) -> None:
    ds = small_world.dataset
    kinds = {k.kind: k for k in TABLES.product_kinds}
    for kind, name, description in ds.products[["kind", "name", "description"]].itertuples(index=False):
        variants = [v for v in kinds[kind].variants if re.fullmatch(rf"\w+ {re.escape(v.name)}( \d+)?", name)]
        assert variants, name
        assert name.split(" ")[0] in TABLES.brands
        assert description.startswith(variants[0].sentence)
    users = ds.users
    assert set(users["region"]) <= set(TABLES.population.regions)
    for band, stage in zip(users["age_band"], small_world.truth.life_stage, strict=True):
        assert band in dict(TABLES.population.stage_age_bands[str(stage)])
    text = TABLES.catalogue_text
    assert set(ds.items["level"]) <= set(text.levels.values())
    titles = set(ds.items["title"])
    assert "Retirement Planning" in titles and set(text.planning_topics[:3]) <= titles
    templates = [
        re.escape(t).replace(r"\{title\}", ".+").replace(r"\{terms\}", ".+")
        for t in text.description_templates
    ]
    courses = ds.items[ds.items["kind"] == "course"]
    assert all(any(re.fullmatch(t, d, re.DOTALL) for t in templates) for d in courses["description"])


def _edit(name: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        raw = json.loads((folder / name).read_text(encoding="utf-8"))
        change(raw)
        (folder / name).write_text(json.dumps(raw), encoding="utf-8")

    return apply


def _rename_theme(raw: dict[str, Any]) -> None:
    raw["topics"]["wellness"] = raw["topics"].pop("health")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit("topics.json", _rename_theme), "topics.json['topics'] must list the themes"),
        (
            _edit("population.json", lambda r: r["stage_interest"]["student"].update(finanse=1.0)),
            "population.json['stage_interest']['student']: unknown names ['finanse']",
        ),
        (
            _edit("population.json", lambda r: r["stage_probability"].update(student=0.9)),
            "population.json['stage_probability'] must be non-negative and sum to 1",
        ),
        (
            _edit("catalogue.json", lambda r: r.pop("health_topics")),
            "catalogue.json['health_topics'] is missing",
        ),
        (
            _edit("products.json", lambda r: r["kinds"][2].update(risk_level=[2])),
            "products.json['kinds'][2]: risk_level and min_premium must be [low, high] pairs",
        ),
        (
            _edit("products.json", lambda r: r["kinds"][0]["variants"][1].update(stages={"retired": 1.0})),
            "products.json['kinds'][0]['variants'][1]['stages']: unknown names ['retired']",
        ),
        (
            lambda folder: (folder / "products.json").write_text("{", encoding="utf-8"),
            "products.json cannot be read",
        ),
    ],
)
def test_a_broken_table_fails_naming_the_file_and_the_entry(
    tmp_path: Path, edit: Callable[[Path], None], message: str
) -> None:
    folder = copy_tables(tmp_path)
    edit(folder)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_tables(folder)


def test_missing_file_is_named(tmp_path: Path) -> None:
    folder = copy_tables(tmp_path)
    shutil.move(folder / "topics.json", tmp_path / "elsewhere.json")
    with pytest.raises(ValueError, match=r"demo_world/topics\.json cannot be read"):
        load_tables(folder)
