"""What each ingested table must agree with in the service, and how it is written.

The schema's own rules (types, ranges, enumerations, unique ids, the rating rule) are checked first by
:func:`recommender.data.validation.validate_tables`, the same code that loads a dataset from files. Then,
per table, what only the service knows: that the learners and items an event names exist (sent before, in a
users or items file), that no learner was erased, that an event carries the platform's id, that a partner
sends only its own products. Every problem names the file (or request), the line and the column; if there
is any, nothing is written.

Writes are idempotent: an event whose id is stored already, or a row equal to the stored one, changes
nothing (counted as ``unchanged``); a changed catalogue row or learner attribute is updated.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from backend.models import KnowledgeItem, LearningEvent, Product, User, utcnow
from backend.services.erasure import ErasureRegister
from backend.services.users import new_user
from recommender.data.schema import SCHEMA
from recommender.data.validation import Problems, Source

CHUNK = 5_000
Progress = Callable[[float], None]


@dataclass
class Outcome:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Internal ids of the learners whose events changed (their profiles are refreshed).
    learners: set[str] = field(default_factory=set)


def _report(
    problems: Problems, source: Source, table: str, column: str, rows: np.ndarray, say: Callable[[int], str]
) -> None:
    col_idx = SCHEMA[table].column_names.index(column)
    for i in rows[:200]:
        problems.add(f"{source.at(int(i))}, column {column!r}: {say(int(i))}", 0, int(i), col_idx)
    if len(rows) > 200:
        problems.count_only(len(rows) - 200)


def _clean(value: Any) -> Any:
    """A stored value from a frame cell: None for missing, plain Python numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _learners(session: Session, platform_ids: Iterable[str]) -> dict[str, User]:
    ids = sorted(set(platform_ids))
    out: dict[str, User] = {}
    for part in _chunks(ids):
        for user in session.exec(select(User).where(col(User.platform_user_id).in_(part))).all():
            assert user.platform_user_id is not None
            out[user.platform_user_id] = user
    return out


# ---------------------------------------------------------------------------------------------- checks
def check(
    session: Session,
    table: str,
    frame: pd.DataFrame,
    source: Source,
    problems: Problems,
    erasure: ErasureRegister,
    partner_id: str | None,
) -> None:
    """What only the service knows about ``frame`` (already valid against the schema)."""
    erased: set[str] = set()
    if table in ("users", "interactions"):
        ids = frame["user_id"].astype(str)
        erased = erasure.erased(session, ids.unique().tolist())
        if erased:
            bad = np.flatnonzero(ids.isin(erased).to_numpy())
            _report(
                problems, source, table, "user_id", bad, lambda i: "belongs to an erased learner: refused"
            )
    if table == "interactions":
        missing = frame["event_id"].isna().to_numpy()
        _report(
            problems,
            source,
            table,
            "event_id",
            np.flatnonzero(missing),
            lambda i: (
                "required when ingesting (the platform's id of the event makes sending it twice harmless)"
            ),
        )
        users = frame["user_id"].astype(str)
        known = _learners(session, users.unique().tolist())
        unknown = ~users.isin(known).to_numpy() & ~users.isin(erased).to_numpy()
        _report(
            problems,
            source,
            table,
            "user_id",
            np.flatnonzero(unknown),
            lambda i: f"{users.iloc[i]!r} is not a known learner: send them in a users file first",
        )
        items = frame["item_id"].astype(str)
        wanted = items.unique().tolist()
        stored = set(
            session.exec(select(col(KnowledgeItem.id)).where(col(KnowledgeItem.id).in_(wanted))).all()
        )
        bad = np.flatnonzero(~items.isin(stored).to_numpy())
        _report(
            problems,
            source,
            table,
            "item_id",
            bad,
            lambda i: f"{items.iloc[i]!r} is not a known item: send it in an items file first",
        )
    if table == "products":
        ids = frame["product_id"].astype(str)
        owners = dict(
            session.exec(
                select(col(Product.id), col(Product.partner_id)).where(
                    col(Product.id).in_(ids.unique().tolist())
                )
            ).all()
        )
        others = ids.map(lambda p: owners.get(p) not in (None, partner_id)).to_numpy(dtype=bool)
        _report(
            problems,
            source,
            table,
            "product_id",
            np.flatnonzero(others),
            lambda i: "belongs to another partner",
        )


# ---------------------------------------------------------------------------------------------- writes
def write(
    session: Session, table: str, frame: pd.DataFrame, partner_id: str | None, progress: Progress
) -> Outcome:
    """Write ``frame`` (checked) in the caller's transaction."""
    if table == "interactions":
        return _write_events(session, frame, progress)
    if table == "users":
        return _write_users(session, frame, progress)
    if table == "items":
        return _upsert(session, KnowledgeItem, frame, "item_id", _item_row, progress)
    if table == "products":
        assert partner_id is not None
        return _upsert(session, Product, frame, "product_id", lambda r: _product_row(r, partner_id), progress)
    raise ValueError(f"table {table!r} cannot be ingested")


def _item_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["item_id"],
        "kind": r["kind"],
        "title": r["title"],
        "description": r.get("description") or "",
        "category": r["category"],
        "price": float(r["price"]),
        "level": r.get("level") or "",
    }


def _product_row(r: dict[str, Any], partner_id: str) -> dict[str, Any]:
    return {
        "id": r["product_id"],
        "partner_id": partner_id,
        "kind": r["kind"],
        "name": r["name"],
        "description": r.get("description") or "",
        "risk_level": int(r["risk_level"]),
        "min_premium": float(r["min_premium"]),
    }


def _upsert(
    session: Session,
    model: Any,
    frame: pd.DataFrame,
    key: str,
    to_row: Callable[[dict[str, Any]], dict[str, Any]],
    progress: Progress,
) -> Outcome:
    out = Outcome(rows=len(frame))
    records = [{k: _clean(v) for k, v in r.items()} for r in frame.to_dict("records")]
    for n, part in enumerate(_chunks(records)):
        rows = [to_row(r) for r in part]
        stored = {
            obj.id: obj
            for obj in session.exec(select(model).where(col(model.id).in_([r["id"] for r in rows])))
        }
        for row in rows:
            obj = stored.get(row["id"])
            if obj is None:
                session.add(model(**row))
                out.inserted += 1
            elif any(getattr(obj, k) != v for k, v in row.items()):
                for k, v in row.items():
                    setattr(obj, k, v)
                session.add(obj)
                out.updated += 1
            else:
                out.unchanged += 1
        progress(min(1.0, (n + 1) * CHUNK / max(len(records), 1)))
    return out


ATTRIBUTES = ("age_band", "region", "life_stage")


def _write_users(session: Session, frame: pd.DataFrame, progress: Progress) -> Outcome:
    out = Outcome(rows=len(frame))
    records = [{k: _clean(v) for k, v in r.items()} for r in frame.to_dict("records")]
    known = _learners(session, [r["user_id"] for r in records])
    for n, part in enumerate(_chunks(records)):
        for r in part:
            attrs = {a: r.get(a) for a in ATTRIBUTES}
            user = known.get(r["user_id"])
            if user is None:
                user, _token = new_user(r["user_id"])
                user.token_hash = None  # the platform signs the learner in when they come
                for a, v in attrs.items():
                    setattr(user, a, v)
                session.add(user)
                known[r["user_id"]] = user
                out.inserted += 1
            elif any(getattr(user, a) != v for a, v in attrs.items()):
                for a, v in attrs.items():
                    setattr(user, a, v)
                session.add(user)
                out.updated += 1
            else:
                out.unchanged += 1
        progress(min(1.0, (n + 1) * CHUNK / max(len(records), 1)))
    return out


def _write_events(session: Session, frame: pd.DataFrame, progress: Progress) -> Outcome:
    out = Outcome(rows=len(frame))
    learners = {
        p: u.id for p, u in _learners(session, frame["user_id"].astype(str).unique().tolist()).items()
    }
    event_ids = frame["event_id"].astype(str).to_numpy()
    users = frame["user_id"].astype(str).map(learners).to_numpy()
    items = frame["item_id"].astype(str).to_numpy()
    events = frame["event"].astype(str).to_numpy()
    values = frame["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    times = frame["timestamp"].dt.tz_convert("UTC").dt.to_pydatetime()
    now = utcnow()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        columns = (event_ids, users, items, events, values, times)
        return _copy_events(session, out, columns, now, progress)
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LearningEvent)
    stmt = stmt.on_conflict_do_nothing(index_elements=["event_id"])
    for start in range(0, len(frame), CHUNK):
        end = min(start + CHUNK, len(frame))
        part = event_ids[start:end].tolist()
        stored = set(
            session.exec(
                select(col(LearningEvent.event_id)).where(col(LearningEvent.event_id).in_(part))
            ).all()
        )
        rows = []
        seen: set[str] = set()
        for i in range(start, end):
            eid = str(event_ids[i])
            if eid in stored or eid in seen:
                continue
            seen.add(eid)
            v = values[i]
            rows.append(
                {
                    "event_id": eid,
                    "user_id": users[i],
                    "item_id": items[i],
                    "event": events[i],
                    "value": None if np.isnan(v) else float(v),
                    "occurred_at": times[i],
                    "ingested_at": now,
                }
            )
            out.learners.add(str(users[i]))
        if rows:
            session.connection().execute(stmt, rows)
        out.inserted += len(rows)
        progress(end / max(len(frame), 1))
    out.unchanged = out.rows - out.inserted
    return out


def _copy_events(
    session: Session,
    out: Outcome,
    columns: tuple[np.ndarray, ...],
    now: dt.datetime,
    progress: Progress,
) -> Outcome:
    """PostgreSQL: the rows go in with ``COPY`` into a temporary table of this transaction, then one
    ``INSERT … SELECT`` keeps the first row of each event id and skips ids already stored. Same outcome as
    the portable path (all or nothing, idempotent by event id), without a statement per chunk."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    event_ids, users, items, events, values, times = columns
    with raw.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE learning_event_in (n bigint, event_id text, user_id text, item_id text, "
            "event text, value double precision, occurred_at timestamptz) ON COMMIT DROP"
        )
        total = max(len(event_ids), 1)
        with cur.copy(
            "COPY learning_event_in (n, event_id, user_id, item_id, event, value, occurred_at) FROM STDIN"
        ) as copy:
            for i in range(len(event_ids)):
                v = None if np.isnan(values[i]) else float(values[i])
                copy.write_row((i, event_ids[i], users[i], items[i], events[i], v, times[i]))
                if i % CHUNK == CHUNK - 1:
                    progress(0.9 * (i + 1) / total)
        cur.execute(
            "WITH added AS ("
            " INSERT INTO learning_event (event_id, user_id, item_id, event, value, occurred_at, ingested_at)"
            " SELECT DISTINCT ON (event_id) event_id, user_id, item_id, event, value, occurred_at, %s"
            " FROM learning_event_in ORDER BY event_id, n"
            " ON CONFLICT (event_id) DO NOTHING RETURNING user_id)"
            " SELECT user_id, count(*) FROM added GROUP BY user_id",
            (now,),
        )
        for user_id, n in cur.fetchall():
            out.inserted += int(n)
            out.learners.add(str(user_id))
        cur.execute("DROP TABLE learning_event_in")
    progress(1.0)
    out.unchanged = out.rows - out.inserted
    return out
