"""Load, validate and save a KnowLedger dataset (five CSV or Parquet tables, see :mod:`.schema`).

Validation is all-or-nothing (the rules are in :mod:`.validation`): every problem found is collected up
to a cap and raised together as one :class:`DatasetError` whose lines name the file, the line and the
column. A partner uploading a file gets the whole list at once instead of fixing one error per round
trip, and callers never see a half-loaded dataset.

CSV is read with the :mod:`csv` module rather than ``pandas.read_csv`` so that reported line numbers are
physical line numbers even when a quoted description spans several lines; a table may be given as
``<name>.csv`` or ``<name>.parquet``, not both.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recommender.data.dataset import DatasetError, KnowledgeDataset
from recommender.data.readers import read_csv_text, read_parquet
from recommender.data.schema import TABLE_NAMES
from recommender.data.validation import Problems, Source, validate_tables

__all__ = [
    "DEFAULT_MAX_ERRORS",
    "DatasetError",
    "KnowledgeDataset",
    "load_dataset",
    "save_dataset",
    "validate_dataset",
]

DEFAULT_MAX_ERRORS = 50


# ----------------------------------------------------------------------------------------------------
# reading


def _read_csv(path: Path, problems: Problems, table_idx: int) -> tuple[pd.DataFrame, Source] | None:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return read_csv_text(handle, path.name, problems, table_idx)
    except UnicodeDecodeError as exc:
        problems.add(f"{path.name}: not valid UTF-8 text ({exc.reason} at byte {exc.start})", table_idx)
        return None


def _read_parquet(path: Path, problems: Problems, table_idx: int) -> tuple[pd.DataFrame, Source] | None:
    return read_parquet(path.read_bytes(), path.name, problems, table_idx)


# ----------------------------------------------------------------------------------------------------
# public API


def load_dataset(directory: Path | str, max_errors: int = DEFAULT_MAX_ERRORS) -> KnowledgeDataset:
    """Read and validate ``<table>.csv`` or ``<table>.parquet`` for each table in the schema.

    Raises :class:`DatasetError` listing up to ``max_errors`` problems (each naming file, line/row and
    column) when anything is wrong; returns only a fully valid dataset.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError([f"{directory}: not a directory"], where=str(directory))
    problems = Problems(max_errors)
    raws: dict[str, tuple[pd.DataFrame, Source]] = {}
    for table_idx, name in enumerate(TABLE_NAMES):
        csv_path = directory / f"{name}.csv"
        pq_path = directory / f"{name}.parquet"
        if csv_path.exists() and pq_path.exists():
            problems.add(f"{name}: both {csv_path.name} and {pq_path.name} exist; keep only one", table_idx)
            continue
        if not csv_path.exists() and not pq_path.exists():
            problems.add(f"{name}: missing table (expected {csv_path.name} or {pq_path.name})", table_idx)
            continue
        read = (
            _read_csv(csv_path, problems, table_idx)
            if csv_path.exists()
            else _read_parquet(pq_path, problems, table_idx)
        )
        if read is not None:
            raws[name] = read
    tables = validate_tables(raws, problems)
    if problems.total:
        raise DatasetError(problems.messages(), problems.total, where=str(directory))
    return KnowledgeDataset(**tables)


def validate_dataset(ds: KnowledgeDataset, max_errors: int = DEFAULT_MAX_ERRORS) -> KnowledgeDataset:
    """Validate in-memory tables with the same rules as :func:`load_dataset`; return the canonical form.

    Locations read ``users (in memory) row 3`` (1-based position in the frame).
    """
    problems = Problems(max_errors)
    raws: dict[str, tuple[pd.DataFrame, Source]] = {}
    for name in TABLE_NAMES:
        frame = getattr(ds, name)
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"KnowledgeDataset.{name} must be a pandas DataFrame, got {type(frame).__name__}")
        frame = frame.reset_index(drop=True)
        raws[name] = (frame, Source(f"{name} (in memory)", "row", np.arange(1, len(frame) + 1)))
    tables = validate_tables(raws, problems)
    if problems.total:
        raise DatasetError(problems.messages(), problems.total, where="(in memory)")
    return KnowledgeDataset(**tables)


_DATASET_FILES = {f"{name}.{ext}" for name in TABLE_NAMES for ext in ("csv", "parquet")}


def _csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as ISO 8601 UTC strings (second resolution unless sub-second values exist)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(out[col]):
            ts = out[col]
            has_fraction = bool(
                (ts.dropna().dt.microsecond != 0).any() or (ts.dropna().dt.nanosecond != 0).any()
            )
            fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if has_fraction else "%Y-%m-%dT%H:%M:%SZ"
            out[col] = ts.dt.strftime(fmt)
    return out


def save_dataset(ds: KnowledgeDataset, directory: Path | str, fmt: Literal["csv", "parquet"] = "csv") -> Path:
    """Validate ``ds`` and write it to ``directory`` atomically.

    The tables are written into a temporary sibling folder which then replaces ``directory`` with a
    rename, so readers see either the old dataset or the new one, never a mix. An existing
    ``directory`` is replaced only if it holds nothing but dataset files (refusing otherwise protects
    unrelated folders from a mistyped path).
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    canonical = validate_dataset(ds)
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise ValueError(f"{directory} exists and is not a directory")
        foreign = sorted(p.name for p in directory.iterdir() if p.name not in _DATASET_FILES)
        if foreign:
            raise ValueError(
                f"refusing to replace {directory}: it contains files that are not dataset tables "
                f"({', '.join(foreign)})"
            )
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=parent))
    try:
        for name, frame in canonical.tables().items():
            if fmt == "csv":
                _csv_frame(frame).to_csv(tmp / f"{name}.csv", index=False)
            else:
                frame.to_parquet(tmp / f"{name}.parquet", index=False)
        if directory.exists():
            backup = parent / f".{directory.name}.old-{uuid.uuid4().hex}"
            directory.rename(backup)
            try:
                tmp.rename(directory)
            except OSError:
                backup.rename(directory)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory
