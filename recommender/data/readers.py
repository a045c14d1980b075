"""Reading one table from bytes: CSV, NDJSON (one JSON object per line) or Parquet.

Each reader returns the raw frame (every cell as read, validated later by :mod:`.validation`) and a
:class:`~recommender.data.validation.Source` that phrases locations: ``interactions.csv line 17`` (CSV:
physical 1-based lines, the header is line 1, a quoted value spanning two lines counts as two),
``events.ndjson line 4`` (NDJSON: 1-based lines) or ``items.parquet row 3``. A file that cannot be read at
all is one problem naming it; nothing is returned half-read.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Literal

import numpy as np
import pandas as pd

from recommender.data.validation import Problems, Source

Format = Literal["csv", "ndjson", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "ndjson", "parquet")


def empty_frame(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in dict.fromkeys(columns)})


def read_csv_text(
    handle: io.TextIOBase, label: str, problems: Problems, table_idx: int
) -> tuple[pd.DataFrame, Source] | None:
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            problems.add(f"{label}: empty file (expected a header line)", table_idx)
            return None
        header = [h.strip() for h in header]
        start = reader.line_num + 1
        for record in reader:
            if not record or all(not v.strip() for v in record):
                start = reader.line_num + 1
                continue
            if len(record) != len(header):
                problems.add(
                    f"{label} line {start}: expected {len(header)} fields, found {len(record)}",
                    table_idx,
                    start,
                )
            else:
                rows.append(record)
                lines.append(start)
            start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        problems.add(f"{label}: not valid UTF-8 text ({exc.reason} at byte {exc.start})", table_idx)
        return None
    except csv.Error as exc:
        problems.add(f"{label}: malformed CSV ({exc})", table_idx)
        return None
    frame = pd.DataFrame(rows, columns=pd.Index(header), dtype=object) if rows else empty_frame(header)
    return frame, Source(label, "line", np.asarray(lines, dtype=np.int64))


def read_ndjson(
    data: bytes, label: str, problems: Problems, table_idx: int
) -> tuple[pd.DataFrame, Source] | None:
    records: list[dict[str, object]] = []
    lines: list[int] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(f"{label}: not valid UTF-8 text ({exc.reason} at byte {exc.start})", table_idx)
        return None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(f"{label} line {n}: not valid JSON ({exc.msg} at column {exc.colno})", table_idx, n)
            continue
        if not isinstance(value, dict):
            problems.add(
                f"{label} line {n}: expected a JSON object, got {type(value).__name__}", table_idx, n
            )
            continue
        records.append(value)
        lines.append(n)
    columns = list(dict.fromkeys(k for r in records for k in r))
    frame = (
        pd.DataFrame.from_records(records, columns=columns).astype(object)
        if records
        else empty_frame(columns)
    )
    frame = frame.where(frame.notna(), None)
    return frame, Source(label, "line", np.asarray(lines, dtype=np.int64))


def read_parquet(
    data: bytes, label: str, problems: Problems, table_idx: int
) -> tuple[pd.DataFrame, Source] | None:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises a variety of errors for corrupt files
        problems.add(f"{label}: cannot read Parquet file ({type(exc).__name__}: {exc})", table_idx)
        return None
    frame = frame.reset_index(drop=True)
    return frame, Source(label, "row", np.arange(1, len(frame) + 1, dtype=np.int64))


def read_table(
    data: bytes, fmt: Format, label: str, problems: Problems, table_idx: int = 0
) -> tuple[pd.DataFrame, Source] | None:
    """One table from ``data`` in ``fmt``; problems (naming ``label``) go to ``problems``."""
    if fmt == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.add(f"{label}: not valid UTF-8 text ({exc.reason} at byte {exc.start})", table_idx)
            return None
        return read_csv_text(io.StringIO(text, newline=""), label, problems, table_idx)
    if fmt == "ndjson":
        return read_ndjson(data, label, problems, table_idx)
    if fmt == "parquet":
        return read_parquet(data, label, problems, table_idx)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
