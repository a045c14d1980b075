"""Loader and schema: every kind of bad input is reported with file, line and column; nothing half-loads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.data import DatasetError, KnowledgeDataset, load_dataset, save_dataset, validate_dataset
from recommender.data.demo import DemoWorld
from recommender.data.schema import SCHEMA, render_markdown
from recommender.paths import repo_root

TINY: dict[str, str] = {
    "users": (
        "user_id,age_band,region,life_stage\n"
        "u1,25-34,north,young_professional\n"
        "u2,35-44,south,family\n"
        "u3,,,\n"
    ),
    "items": (
        "item_id,kind,title,description,category,price,level\n"
        'c1,course,Index Fund Investing,"Portfolio, risk and index funds",Business Finance,19.99,beginner\n'
        "c2,ebook,Guitar Chords,Chords and rhythm,Musical Instruments,0,all_levels\n"
        "c3,audio,Family Health,,Health & Family,4.5,\n"
    ),
    "interactions": (
        "user_id,item_id,event,value,timestamp\n"
        "u1,c1,view,,2023-01-01T10:00:00Z\n"
        "u1,c1,purchase,19.99,2023-01-01T11:00:00Z\n"
        "u1,c1,completion,,1672700000\n"
        "u1,c1,rating,5,2023-01-03T00:00:00+02:00\n"
        "u2,c2,view,,2023-02-01T09:00:00Z\n"
        "u3,c3,view,,2023-03-01T09:00:00\n"
    ),
    "products": (
        "product_id,kind,name,description,risk_level,min_premium\n"
        "p1,wealth,Global Index Fund,Low-cost index fund,3,100\n"
        "p2,life,Family Term Life,Protects your family,1,12.5\n"
    ),
    "conversions": (
        "user_id,product_id,timestamp,value\nu1,p1,2023-04-01T00:00:00Z,250\nu2,p2,2023-04-02T00:00:00Z,\n"
    ),
}


def write_tiny(directory: Path, overrides: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in {**TINY, **(overrides or {})}.items():
        (directory / f"{name}.csv").write_text(text, encoding="utf-8")
    return directory


def with_line(table: str, line: int, text: str) -> dict[str, str]:
    """TINY[table] with its 1-based ``line`` replaced by ``text``."""
    lines = TINY[table].splitlines()
    lines[line - 1] = text
    return {table: "\n".join(lines) + "\n"}


def load_error(directory: Path, **kwargs: int) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(directory, **kwargs)
    return info.value


def test_tiny_dataset_loads_with_canonical_types(tmp_path: Path) -> None:
    ds = load_dataset(write_tiny(tmp_path / "ds"))
    assert list(ds.users.columns) == SCHEMA["users"].column_names
    assert ds.products["risk_level"].dtype == np.int64
    assert ds.items["price"].tolist() == [19.99, 0.0, 4.5]
    assert str(ds.interactions["timestamp"].dtype) == "datetime64[ns, UTC]"
    ts = ds.interactions["timestamp"].tolist()
    # epoch seconds 1672700000 = 2023-01-02 22:53:20 UTC (1672531200 is 2023-01-01T00:00Z, + 169200 s)
    assert ts[2] == pd.Timestamp("2023-01-02T22:53:20Z")
    # +02:00 offset converted to UTC; a timestamp without offset is read as UTC
    assert ts[3] == pd.Timestamp("2023-01-02T22:00:00Z")
    assert ts[5] == pd.Timestamp("2023-03-01T09:00:00Z")
    # optional cells left empty are missing values, not empty strings
    assert ds.users["age_band"].isna().tolist() == [False, False, True]
    assert np.isnan(ds.conversions["value"].iloc[1])
    # text for the knowledge space: title + description, title alone when there is no description
    assert ds.item_texts()[0] == "Index Fund Investing. Portfolio, risk and index funds"
    assert ds.item_texts()[2] == "Family Health"


BAD_CELLS = [
    (
        with_line("interactions", 3, "u1,c1,clicked,,2023-01-01T11:00:00Z"),
        "interactions.csv line 3, column 'event': 'clicked' is not one of view, purchase, completion, rating",
    ),
    (
        with_line("items", 3, "c2,ebook,Guitar Chords,Chords,Musical Instruments,abc,all_levels"),
        "items.csv line 3, column 'price': 'abc' is not a number",
    ),
    (
        with_line("items", 4, "c3,audio,Family Health,,Health & Family,-1,"),
        "items.csv line 4, column 'price': -1 is out of range (must be >= 0)",
    ),
    (
        with_line("interactions", 5, "u1,c1,rating,7,2023-01-03T00:00:00Z"),
        "interactions.csv line 5, column 'value': rating value 7 must be an integer from 1 to 5",
    ),
    (
        with_line("interactions", 5, "u1,c1,rating,4.5,2023-01-03T00:00:00Z"),
        "interactions.csv line 5, column 'value': rating value 4.5 must be an integer from 1 to 5",
    ),
    (
        with_line("interactions", 5, "u1,c1,rating,,2023-01-03T00:00:00Z"),
        "interactions.csv line 5, column 'value': required for 'rating' events but empty",
    ),
    (
        {"users": TINY["users"] + "u1,35-44,south,family\n"},
        "users.csv line 5, column 'user_id': 'u1' is a duplicate (first at users.csv line 2)",
    ),
    (
        with_line("interactions", 6, "ghost,c2,view,,2023-02-01T09:00:00Z"),
        "interactions.csv line 6, column 'user_id': 'ghost' is not a known user_id in users.csv",
    ),
    (
        with_line("interactions", 6, "u2,c9,view,,2023-02-01T09:00:00Z"),
        "interactions.csv line 6, column 'item_id': 'c9' is not a known item_id in items.csv",
    ),
    (
        with_line("conversions", 2, "u1,p9,2023-04-01T00:00:00Z,250"),
        "conversions.csv line 2, column 'product_id': 'p9' is not a known product_id in products.csv",
    ),
    (
        with_line("interactions", 2, "u1,c1,view,,yesterday"),
        "interactions.csv line 2, column 'timestamp': 'yesterday' is not an ISO 8601 timestamp or epoch "
        "seconds",
    ),
    (
        with_line("interactions", 4, "u1,c1,completion,,1672700000000"),
        "interactions.csv line 4, column 'timestamp': 1672700000000 is outside 1970-2100 as epoch seconds",
    ),
    (
        {"users": TINY["users"] + "ann@example.org,,,\n"},
        "users.csv line 5, column 'user_id': 'ann@example.org' is not an id of letters",
    ),
    (
        with_line("products", 2, "p1,wealth,Global Index Fund,Low-cost index fund,2.5,100"),
        "products.csv line 2, column 'risk_level': 2.5 is not an integer",
    ),
    (
        with_line("products", 3, "p2,life,Family Term Life,Protects your family,9,12.5"),
        "products.csv line 3, column 'risk_level': 9 is out of range (must be between 1 and 5)",
    ),
    (
        with_line("products", 3, "p2,crypto,Family Term Life,Protects your family,1,12.5"),
        "products.csv line 3, column 'kind': 'crypto' is not one of wealth, health, life",
    ),
    (
        with_line("items", 4, "c3,audio,,,Health & Family,4.5,"),
        "items.csv line 4, column 'title': required value is empty",
    ),
    (
        with_line("users", 2, "u1,30,north,young_professional"),
        "users.csv line 2, column 'age_band': '30' is not one of 18-24, 25-34",
    ),
    (
        with_line("interactions", 3, "u1,c1,purchase,2023-01-01T11:00:00Z"),
        "interactions.csv line 3: expected 5 fields, found 4",
    ),
    (
        with_line("conversions", 3, "u2,p2,2023-04-02T00:00:00Z,free"),
        "conversions.csv line 3, column 'value': 'free' is not a number",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), BAD_CELLS, ids=[e for _, e in BAD_CELLS])
def test_bad_cell_is_reported_with_file_line_and_column(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    err = load_error(write_tiny(tmp_path / "ds", overrides))
    assert err.total == 1, str(err)
    assert err.problems[0].startswith(expected), err.problems[0]
    assert expected in str(err)


def test_email_like_id_is_called_out_as_not_pseudonymous(tmp_path: Path) -> None:
    err = load_error(write_tiny(tmp_path / "ds", {"users": TINY["users"] + "ann@example.org,,,\n"}))
    assert "looks like an e-mail address; ids must be pseudonymous" in err.problems[0]


def test_personal_columns_are_rejected_in_users(tmp_path: Path) -> None:
    users = "user_id,age_band,region,life_stage,email\nu1,25-34,north,student,a@b.c\nu2,,,,\nu3,,,,\n"
    err = load_error(write_tiny(tmp_path / "ds", {"users": users}))
    assert err.problems == [
        "users.csv line 1, column 'email': unknown column (the users table accepts only coarse attributes); "
        "allowed: user_id, age_band, region, life_stage"
    ]


def test_missing_required_column_is_reported_on_the_header_line(tmp_path: Path) -> None:
    items = TINY["items"].replace(",price,", ",cost,", 1)
    err = load_error(write_tiny(tmp_path / "ds", {"items": items}))
    assert "items.csv line 1, column 'price': required column is missing" in err.problems
    assert any("column 'cost': unknown column" in p for p in err.problems)


def test_optional_columns_may_be_left_out(tmp_path: Path) -> None:
    users = "user_id\nu1\nu2\nu3\n"
    ds = load_dataset(write_tiny(tmp_path / "ds", {"users": users}))
    assert list(ds.users.columns) == SCHEMA["users"].column_names
    assert ds.users["life_stage"].isna().all()


def test_missing_table_and_ambiguous_formats(tmp_path: Path) -> None:
    directory = write_tiny(tmp_path / "ds")
    (directory / "conversions.csv").unlink()
    err = load_error(directory)
    assert "conversions: missing table (expected conversions.csv or conversions.parquet)" in err.problems

    directory = write_tiny(tmp_path / "ds2")
    load_dataset(directory).products.to_parquet(directory / "products.parquet")
    err = load_error(directory)
    assert any("both products.csv and products.parquet exist" in p for p in err.problems)


def test_all_problems_are_collected_in_file_order(tmp_path: Path) -> None:
    overrides = {
        **with_line("users", 2, "u1,30,north,young_professional"),
        **with_line("items", 3, "c2,ebook,Guitar Chords,Chords,Musical Instruments,abc,all_levels"),
        **with_line("conversions", 2, "u1,p9,2023-04-01T00:00:00Z,250"),
    }
    err = load_error(write_tiny(tmp_path / "ds", overrides))
    assert err.total == 3
    assert [p.split(",")[0] for p in err.problems] == [
        "users.csv line 2",
        "items.csv line 3",
        "conversions.csv line 2",
    ]
    assert str(err).startswith("3 problems in dataset ")


def test_problem_list_is_capped_but_counted(tmp_path: Path) -> None:
    rows = "".join(f"u1,c1,clicked,,2023-01-0{d}T10:00:00Z\n" for d in range(1, 10))
    inter = TINY["interactions"] + rows + "u1,c1,tapped,,2023-01-01T10:00:00Z\n"
    err = load_error(write_tiny(tmp_path / "ds", {"interactions": inter}), max_errors=3)
    assert err.total == 10
    assert len(err.problems) == 3
    assert err.problems[0].startswith("interactions.csv line 8, column 'event': 'clicked'")
    assert "... and 7 more" in str(err)


def test_line_numbers_are_physical_with_multiline_fields_and_blank_lines(tmp_path: Path) -> None:
    items = (
        "item_id,kind,title,description,category,price,level\n"
        'c1,course,Index Fund Investing,"Portfolio,\nrisk and index funds",Business Finance,19.99,beginner\n'
        "\n"
        "c2,ebook,Guitar Chords,Chords and rhythm,Musical Instruments,oops,all_levels\n"
        "c3,audio,Family Health,,Health & Family,4.5,\n"
    )
    err = load_error(write_tiny(tmp_path / "ds", {"items": items}))
    assert err.problems == ["items.csv line 5, column 'price': 'oops' is not a number"]


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    directory = write_tiny(tmp_path / "ds")
    ds = load_dataset(directory)
    inter = ds.interactions.copy()
    inter["event"] = inter["event"].astype(object)
    inter.loc[1, "event"] = "clicked"
    (directory / "interactions.csv").unlink()
    inter.to_parquet(directory / "interactions.parquet", index=False)
    err = load_error(directory)
    assert err.problems == [
        "interactions.parquet row 2, column 'event': 'clicked' is not one of view, purchase, completion, "
        "rating"
    ]


def test_round_trip_csv_and_parquet(small_world: DemoWorld, tmp_path: Path) -> None:
    original = small_world.dataset
    for fmt in ("csv", "parquet"):
        target = save_dataset(original, tmp_path / f"ds_{fmt}", fmt=fmt)
        assert sorted(p.name for p in target.iterdir()) == sorted(f"{t}.{fmt}" for t in SCHEMA)
        loaded = load_dataset(target)
        for name, frame in original.tables().items():
            pd.testing.assert_frame_equal(getattr(loaded, name), frame, check_dtype=True, obj=f"{fmt}:{name}")


def test_save_is_atomic_and_validates_first(tmp_path: Path) -> None:
    directory = write_tiny(tmp_path / "ds")
    good = load_dataset(directory)
    target = save_dataset(good, tmp_path / "saved")
    bad_items = good.items.copy()
    bad_items.loc[0, "price"] = -5.0
    bad = KnowledgeDataset(good.users, bad_items, good.interactions, good.products, good.conversions)
    with pytest.raises(
        DatasetError, match=re.escape("items (in memory) row 1, column 'price': -5 is out of range")
    ):
        save_dataset(bad, target)
    # the previous dataset is untouched and no temporary folder is left behind
    pd.testing.assert_frame_equal(load_dataset(target).items, good.items)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "saved"]
    # replacing works and swaps the whole folder
    save_dataset(good, target, fmt="parquet")
    assert sorted(p.suffix for p in target.iterdir()) == [".parquet"] * 5


def test_save_refuses_to_replace_unrelated_folders(tmp_path: Path) -> None:
    good = load_dataset(write_tiny(tmp_path / "ds"))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace"):
        save_dataset(good, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_validate_dataset_returns_canonical_copy(tmp_path: Path) -> None:
    good = load_dataset(write_tiny(tmp_path / "ds"))
    raw_users = good.users.astype(object)
    again = validate_dataset(
        KnowledgeDataset(raw_users, good.items, good.interactions, good.products, good.conversions)
    )
    pd.testing.assert_frame_equal(again.users, good.users)


def test_not_a_directory(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nowhere")
    assert err.problems == [f"{tmp_path / 'nowhere'}: not a directory"]


def test_documentation_embeds_the_schema() -> None:
    doc = (repo_root() / "docs" / "data-schema.md").read_text(encoding="utf-8")
    begin, end = "<!-- schema:begin -->\n", "<!-- schema:end -->"
    embedded = doc[doc.index(begin) + len(begin) : doc.index(end)]
    assert embedded == render_markdown(), (
        "docs/data-schema.md is out of date: paste recommender.data.schema.render_markdown() "
        "between the markers"
    )
