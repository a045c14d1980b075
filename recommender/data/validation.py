"""The validation rules of a KnowLedger dataset, applied column by column with vectorised pandas.

Every problem found (types, ranges, enums, unique ids, referential integrity, the rating rule) is
collected in :class:`Problems` with a sort key, so the final report reads in file order, and each
message names the file, the line (CSV: 1-based, the header is line 1; Parquet: 1-based row) and the
column. Values are coerced to the canonical dtypes on the way (strings ``str``, integers ``int64`` or
``Int64`` when optional, floats ``float64``, timestamps ``datetime64[ns, UTC]``), so a 100k-row file
validates in well under a second. Reading the files is :mod:`.loader`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from recommender.data.schema import (
    MAX_EPOCH_S,
    MIN_EPOCH_S,
    SCHEMA,
    TABLE_NAMES,
    ColumnSpec,
    ConditionalRule,
    TableSpec,
)

_PER_COLUMN_DETAIL = 200  # detailed messages kept per column before counting only


# ----------------------------------------------------------------------------------------------------
# problem collection


@dataclass(frozen=True)
class Source:
    """Where rows came from, to phrase locations: ``users.csv line 3`` or ``users.parquet row 2``."""

    label: str
    unit: Literal["line", "row"]
    positions: np.ndarray  # physical line / row number per data row

    def at(self, i: int) -> str:
        return f"{self.label} {self.unit} {int(self.positions[i])}"

    @property
    def header(self) -> str:
        return f"{self.label} line 1" if self.unit == "line" else self.label


class Problems:
    """Collects problems with a sort key so the final report reads in file order."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.entries: list[tuple[int, int, int, str]] = []
        self.total = 0

    def add(self, message: str, table: int = -1, row: int = -1, col: int = -1) -> None:
        self.total += 1
        self.entries.append((table, row, col, message))

    def count_only(self, n: int) -> None:
        self.total += n

    def messages(self) -> list[str]:
        return [e[3] for e in sorted(self.entries, key=lambda e: e[:3])[: self.cap]]


def _fmt(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ----------------------------------------------------------------------------------------------------
# column coercion


def _as_text(raw: pd.Series) -> pd.Series:
    """Object series of stripped strings, ``None`` where the cell is missing or blank."""
    obj = raw.astype(object)
    present = obj.notna().to_numpy()
    out = np.full(len(obj), None, dtype=object)
    if present.any():
        stripped = np.array([str(v).strip() for v in obj.to_numpy()[present]], dtype=object)
        stripped[stripped == ""] = None
        out[present] = stripped
    return pd.Series(out, index=raw.index, dtype=object)


class _ColumnCheck:
    """Reports bad cells of one column with their location, keeping detail for the first few."""

    def __init__(self, problems: Problems, source: Source, table_idx: int, col_idx: int, name: str) -> None:
        self.problems = problems
        self.source = source
        self.table_idx = table_idx
        self.col_idx = col_idx
        self.name = name
        self.detailed = 0

    def report(self, mask: np.ndarray, describe: Iterable[tuple[int, str]]) -> None:
        """``describe`` yields (row index, message) for rows where ``mask`` holds, in row order."""
        n_bad = int(mask.sum())
        if n_bad == 0:
            return
        shown = 0
        for i, msg in describe:
            if self.detailed >= _PER_COLUMN_DETAIL:
                break
            self.problems.add(
                f"{self.source.at(i)}, column {self.name!r}: {msg}",
                self.table_idx,
                int(self.source.positions[i]),
                self.col_idx,
            )
            self.detailed += 1
            shown += 1
        self.problems.count_only(n_bad - shown)


def _coerce_str(raw: pd.Series, spec: ColumnSpec, check: _ColumnCheck) -> pd.Series:
    text = _as_text(raw)
    values = text.to_numpy()
    present = text.notna().to_numpy()
    bad = np.zeros(len(text), dtype=bool)
    if spec.choices is not None:
        allowed = set(spec.choices)
        wrong = present & ~text.isin(allowed).to_numpy()
        options = ", ".join(spec.choices)
        check.report(
            wrong, ((int(i), f"{values[i]!r} is not one of {options}") for i in np.flatnonzero(wrong))
        )
        bad |= wrong
    if spec.pattern is not None:
        regex = re.compile(spec.pattern)
        ok = np.array([bool(regex.fullmatch(v)) if v is not None else True for v in values], dtype=bool)
        wrong = present & ~ok

        def describe_pattern(i: int) -> str:
            msg = f"{values[i]!r} is not {spec.pattern_hint or 'valid'}"
            if "@" in str(values[i]):
                msg += " (looks like an e-mail address; ids must be pseudonymous)"
            return msg

        check.report(wrong, ((int(i), describe_pattern(int(i))) for i in np.flatnonzero(wrong)))
        bad |= wrong
    return text.astype("str").where(present, np.nan) if len(text) else pd.Series([], dtype="str")


def _coerce_number(raw: pd.Series, spec: ColumnSpec, check: _ColumnCheck) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        nums = pd.to_numeric(raw, errors="coerce").astype("float64")
        present = nums.notna().to_numpy()
        shown_values = nums.to_numpy()
        not_number = np.zeros(len(raw), dtype=bool)
    else:
        text = _as_text(raw)
        present = text.notna().to_numpy()
        nums = pd.to_numeric(text, errors="coerce").astype("float64")
        shown_values = text.to_numpy()
        not_number = present & nums.isna().to_numpy()
    arr = nums.to_numpy(dtype=np.float64, na_value=np.nan)
    kind = "an integer" if spec.dtype == "int" else "a number"
    not_number |= present & np.isinf(np.nan_to_num(arr, nan=0.0))
    check.report(
        not_number, ((int(i), f"{_fmt(shown_values[i])} is not {kind}") for i in np.flatnonzero(not_number))
    )
    valid = present & ~not_number
    if spec.dtype == "int":
        frac = valid & (np.mod(np.nan_to_num(arr, nan=0.0), 1.0) != 0)
        check.report(
            frac, ((int(i), f"{_fmt(float(arr[i]))} is not an integer") for i in np.flatnonzero(frac))
        )
        valid &= ~frac
    with np.errstate(invalid="ignore"):
        if spec.min_value is not None or spec.max_value is not None:
            lo = -np.inf if spec.min_value is None else spec.min_value
            hi = np.inf if spec.max_value is None else spec.max_value
            out_of_range = valid & ((arr < lo) | (arr > hi))
            if spec.max_value is None:
                rng = f"must be >= {lo:g}"
            elif spec.min_value is None:
                rng = f"must be <= {hi:g}"
            else:
                rng = f"must be between {lo:g} and {hi:g}"
            check.report(
                out_of_range,
                ((int(i), f"{_fmt(arr[i])} is out of range ({rng})") for i in np.flatnonzero(out_of_range)),
            )
    arr = np.where(present & ~not_number, arr, np.nan)
    if spec.dtype == "int":
        series = pd.Series(arr, index=raw.index).round().astype("Int64")
        return series if not spec.required else series.fillna(0).astype("int64")
    return pd.Series(arr, index=raw.index, dtype="float64")


def _coerce_timestamp(raw: pd.Series, spec: ColumnSpec, check: _ColumnCheck) -> pd.Series:
    n = len(raw)
    result = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        ts = pd.to_datetime(raw)
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        return ts.astype("datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        text = raw.astype(object).where(raw.notna(), None)
        nums = pd.to_numeric(raw, errors="coerce").astype("float64")
    else:
        text = _as_text(raw)
        nums = pd.to_numeric(text, errors="coerce").astype("float64")
    present = text.notna().to_numpy()
    num_arr = nums.to_numpy(dtype=np.float64, na_value=np.nan)
    is_num = present & ~np.isnan(num_arr)
    with np.errstate(invalid="ignore"):
        num_bad = is_num & ((num_arr < MIN_EPOCH_S) | (num_arr > MAX_EPOCH_S) | ~np.isfinite(num_arr))
    values = text.to_numpy()
    check.report(
        num_bad,
        (
            (int(i), f"{_fmt(float(num_arr[i]))} is outside 1970-2100 as epoch seconds (milliseconds given?)")
            for i in np.flatnonzero(num_bad)
        ),
    )
    num_ok = is_num & ~num_bad
    if num_ok.any():
        secs = np.round(num_arr[num_ok] * 1e9).astype(np.int64)
        result.iloc[np.flatnonzero(num_ok)] = pd.to_datetime(secs, unit="ns", utc=True)
    is_text = present & ~is_num
    if is_text.any():
        idx = np.flatnonzero(is_text)
        strings = pd.Series(values[idx], dtype=object).astype(str)
        parsed = pd.to_datetime(strings, format="ISO8601", utc=True, errors="coerce")
        parsed_ok = parsed.notna().to_numpy().copy()
        if parsed_ok.any():
            years = parsed.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                parsed_ok &= (years >= 1970) & (years < 2100)
        text_bad = np.zeros(n, dtype=bool)
        text_bad[idx[~parsed_ok]] = True
        check.report(
            text_bad,
            (
                (int(i), f"{values[i]!r} is not an ISO 8601 timestamp or epoch seconds (1970-2100)")
                for i in np.flatnonzero(text_bad)
            ),
        )
        if parsed_ok.any():
            result.iloc[idx[parsed_ok]] = parsed[parsed_ok].astype("datetime64[ns, UTC]").to_numpy()
    return result


def _missing_mask(raw: pd.Series) -> np.ndarray:
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
        return _as_text(raw).isna().to_numpy()
    return raw.isna().to_numpy()


# ----------------------------------------------------------------------------------------------------
# table validation


@dataclass
class _Validated:
    frame: pd.DataFrame
    source: Source
    present_columns: set[str]


def _validate_table(
    spec: TableSpec, raw: pd.DataFrame, source: Source, problems: Problems, table_idx: int
) -> _Validated:
    columns = [str(c) for c in raw.columns]
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            problems.add(f"{source.header}, column {c!r}: duplicated column", table_idx, 0)
        seen.add(c)
    raw = raw.loc[:, ~pd.Index(columns).duplicated()]
    raw.columns = pd.Index([str(c) for c in raw.columns])
    allowed = spec.column_names
    for c in raw.columns:
        if c not in allowed:
            extra = " (the users table accepts only coarse attributes)" if spec.name == "users" else ""
            problems.add(
                f"{source.header}, column {c!r}: unknown column{extra}; allowed: {', '.join(allowed)}",
                table_idx,
                0,
            )
    for col in spec.columns:
        if col.required and col.name not in raw.columns:
            problems.add(f"{source.header}, column {col.name!r}: required column is missing", table_idx, 0)

    out: dict[str, pd.Series] = {}
    for col_idx, col in enumerate(spec.columns):
        check = _ColumnCheck(problems, source, table_idx, col_idx, col.name)
        if col.name not in raw.columns:
            out[col.name] = _empty_column(col, len(raw))
            continue
        series = raw[col.name].reset_index(drop=True)
        missing = _missing_mask(series)
        if col.required:
            check.report(missing, ((int(i), "required value is empty") for i in np.flatnonzero(missing)))
        if col.dtype == "str":
            out[col.name] = _coerce_str(series, col, check)
        elif col.dtype in ("int", "float"):
            out[col.name] = _coerce_number(series, col, check)
        else:
            out[col.name] = _coerce_timestamp(series, col, check)
        if col.unique:
            values = out[col.name]
            dup = (values.duplicated(keep="first") & values.notna()).to_numpy()
            if dup.any():
                first_pos: dict[object, int] = {}
                for i, v in enumerate(values.tolist()):
                    first_pos.setdefault(v, i)
                check.report(
                    dup,
                    (
                        (
                            int(i),
                            f"{values.iloc[i]!r} is a duplicate "
                            f"(first at {source.at(first_pos[values.iloc[i]])})",
                        )
                        for i in np.flatnonzero(dup)
                    ),
                )
    frame = pd.DataFrame(out, columns=spec.column_names)
    for rule in spec.rules:
        _apply_rule(rule, frame, raw, source, problems, table_idx, spec)
    return _Validated(frame, source, set(raw.columns))


def _empty_column(col: ColumnSpec, n: int) -> pd.Series:
    if col.dtype == "str":
        return pd.Series([np.nan] * n, dtype="str")
    if col.dtype == "int":
        return pd.Series([pd.NA] * n, dtype="Int64")
    if col.dtype == "float":
        return pd.Series(np.full(n, np.nan), dtype="float64")
    return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")


def _apply_rule(
    rule: ConditionalRule,
    frame: pd.DataFrame,
    raw: pd.DataFrame,
    source: Source,
    problems: Problems,
    table_idx: int,
    spec: TableSpec,
) -> None:
    col_idx = spec.column_names.index(rule.column)
    check = _ColumnCheck(problems, source, table_idx, col_idx, rule.column)
    applies = (frame[rule.when_column] == rule.when_value).fillna(False).to_numpy(dtype=bool)
    values = frame[rule.column].to_numpy(dtype=np.float64, na_value=np.nan)
    raw_missing = (
        _missing_mask(raw[rule.column].reset_index(drop=True))
        if rule.column in raw.columns
        else np.ones(len(frame), dtype=bool)
    )
    if rule.required:
        missing = applies & raw_missing
        check.report(
            missing,
            ((int(i), f"required for {rule.when_value!r} events but empty") for i in np.flatnonzero(missing)),
        )
    ok_value = applies & ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        wrong = ok_value & ((values < rule.min_value) | (values > rule.max_value))
        if rule.integer:
            wrong |= ok_value & (np.mod(np.nan_to_num(values), 1.0) != 0)
    kind = "an integer" if rule.integer else "a number"
    check.report(
        wrong,
        (
            (
                int(i),
                f"{rule.when_value} value {_fmt(values[i])} must be {kind} from "
                f"{rule.min_value:g} to {rule.max_value:g}",
            )
            for i in np.flatnonzero(wrong)
        ),
    )


def _check_references(validated: dict[str, _Validated], problems: Problems) -> None:
    for table_idx, name in enumerate(TABLE_NAMES):
        if name not in validated:
            continue
        spec = SCHEMA[name]
        val = validated[name]
        for col_idx, col in enumerate(spec.columns):
            if col.references is None or col.name not in val.present_columns:
                continue
            ref_table, ref_col = col.references
            if ref_table not in validated:
                continue  # the referenced table is missing altogether: already reported
            keys = pd.Index(validated[ref_table].frame[ref_col].dropna().unique())
            values = val.frame[col.name]
            unknown = (values.notna() & ~values.isin(keys)).to_numpy()
            ref_label = validated[ref_table].source.label
            check = _ColumnCheck(problems, val.source, table_idx, col_idx, col.name)
            check.report(
                unknown,
                (
                    (int(i), f"{values.iloc[i]!r} is not a known {ref_col} in {ref_label}")
                    for i in np.flatnonzero(unknown)
                ),
            )


def validate_tables(
    raws: dict[str, tuple[pd.DataFrame, Source]], problems: Problems
) -> dict[str, pd.DataFrame]:
    """Validate the tables present in ``raws`` (by schema name) and their references to each other.

    Problems go to ``problems``; the canonical frames are returned whatever was found, so the caller
    decides (by ``problems.total``) whether they may be used.
    """
    validated: dict[str, _Validated] = {}
    for table_idx, name in enumerate(TABLE_NAMES):
        if name in raws:
            frame, source = raws[name]
            validated[name] = _validate_table(SCHEMA[name], frame, source, problems, table_idx)
    _check_references(validated, problems)
    return {name: v.frame for name, v in validated.items()}
