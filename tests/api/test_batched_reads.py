"""Reads that concurrent requests share on PostgreSQL (``backend.core.async_db.BatchedLookup``, the hot
path's profile read): the keys asked in one turn of the event loop are read with one statement, every
caller gets its own key's row (None for a key with none), a read sent before a caller asked never answers
it, a dropped connection is replaced, and a failure reaches every caller that shared the read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from backend.core.async_db import AsyncStatements, BatchedLookup
from tests.loops import in_a_loop_of_its_own as _run

pytestmark = pytest.mark.postgres

T = TypeVar("T")

_BY_IDS = text("SELECT id, label FROM item WHERE id = ANY(:ids)").bindparams(bindparam("ids"))


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    made = create_engine(pg_url, poolclass=NullPool)
    with made.begin() as conn:
        conn.execute(text("CREATE TABLE item (id VARCHAR PRIMARY KEY, label TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO item VALUES ('a', 'one'), ('b', 'two'), ('c', 'three')"))
    yield made
    made.dispose()


def _set(engine: Engine, key: str, label: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE item SET label = :label WHERE id = :id"), {"label": label, "id": key})


def _lookup(engine: Engine) -> tuple[AsyncStatements, BatchedLookup]:
    statements = AsyncStatements.for_engine(engine, by_ids=_BY_IDS)
    assert statements is not None
    return statements, BatchedLookup(statements, "by_ids", "ids")


def test_keys_asked_in_one_turn_are_one_statement_and_each_caller_gets_its_own_row(engine: Engine) -> None:
    statements, lookup = _lookup(engine)
    keys = ["a", "b", "a", "nobody", "c", "b"]

    async def main() -> list[tuple[Any, ...] | None]:
        try:
            return list(await asyncio.gather(*(lookup.get(k) for k in keys)))
        finally:
            await statements.aclose()

    rows = _run(main)
    assert rows == [("one",), ("two",), ("one",), None, ("three",), ("two",)]
    assert (lookup.reads, lookup.asked) == (1, 6)


def test_a_caller_never_gets_a_read_sent_before_it_asked(engine: Engine) -> None:
    statements, lookup = _lookup(engine)

    async def main() -> tuple[Any, Any]:
        try:
            first = asyncio.ensure_future(lookup.get("a"))
            await asyncio.sleep(0)  # the first read is sent
            await asyncio.to_thread(_set, engine, "a", "changed")  # committed after that read was sent
            second = await lookup.get("a")  # asked after: its own read, which sees the change
            return await first, second
        finally:
            await statements.aclose()

    first, second = _run(main)
    assert second == ("changed",)
    assert first in {("one",), ("changed",)}  # sent before the change; PostgreSQL may still have seen it
    assert lookup.reads == 2


def test_a_dropped_connection_is_replaced_and_a_failure_reaches_every_caller(engine: Engine) -> None:
    statements, lookup = _lookup(engine)

    def end_every_other_connection() -> None:
        with engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

    def rename(old: str, new: str) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            assert await lookup.get("a") == ("one",)  # the pool holds a connection now
            await asyncio.to_thread(end_every_other_connection)
            out["after_drop"] = await asyncio.gather(lookup.get("b"), lookup.get("c"))
            await asyncio.to_thread(rename, "item", "item_away")
            try:
                out["failed"] = await asyncio.gather(
                    lookup.get("a"), lookup.get("b"), lookup.get("a"), return_exceptions=True
                )
            finally:
                await asyncio.to_thread(rename, "item_away", "item")
            out["again"] = await lookup.get("c")
        finally:
            await statements.aclose()
        return out

    out = _run(main)
    assert out["after_drop"] == [("two",), ("three",)]
    failures = out["failed"]
    assert len(failures) == 3 and all(isinstance(f, Exception) for f in failures), failures
    assert all("item" in str(f) for f in failures)  # the statement's own error, for each caller
    assert out["again"] == ("three",)
