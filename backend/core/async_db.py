"""Statements awaited on the event loop, for the hot path on PostgreSQL.

Against a chain on the network, a consent-gated recommendation waits several times: for the directory's
version, the learner's row (the first time), the chain's head, the profile and the serving log's commit.
Run in a worker thread per request, those waits cost more CPU than the work itself: every thread switch,
the GIL handed back and forth among dozens of threads, and a pooled connection checked out per statement.
Measured on two cores (``scripts/bench_api.py --chain devnet --db postgresql``), the thread per request
spent about 1.8 ms of CPU per recommendation; awaiting the waits on the event loop instead takes them off
the CPU (see ``docs/performance.md``).

:class:`AsyncStatements` compiles each statement once for the engine's dialect (the SQL is written once, as a
SQLAlchemy expression, for SQLite and PostgreSQL alike) and runs it on a psycopg ``AsyncConnection`` from a
small pool of this event loop (``psycopg_pool``; connections in autocommit, so a read holds no transaction
and :meth:`AsyncStatements.write_rows` writes a batch as one statement, its own implicit transaction). A
connection the server dropped is discarded and a read made once more on a fresh one; any other failure, or no
connection within :data:`CONNECT_TIMEOUT_S`, is ``DatabaseUnavailable`` (503): nothing was served. Only
PostgreSQL engines have one (:meth:`AsyncStatements.for_engine` is None for SQLite, whose statements are local
CPU work with nothing to wait for).

:class:`BatchedLookup` reads the keys that concurrent requests ask for in one turn of the loop with one
statement (the hot path's profile read); :func:`json_insert` is the one statement for a batch of rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import weakref
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import ClauseElement, TextClause

from backend.errors import DatabaseUnavailable

#: Connections per event loop (a process serves from one loop): reads are short, so a few serve many
#: requests in flight.
POOL_SIZE = 12
#: How long a read waits for a connection before the request is refused (503).
CONNECT_TIMEOUT_S = 5.0


class AsyncStatements:
    def __init__(self, engine: Engine, **statements: ClauseElement) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._sql: dict[str, str] = {
            name: str(stmt.compile(dialect=engine.dialect)) for name, stmt in statements.items()
        }
        # per event loop, the task that opens its pool (every caller awaits the same one)
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Task[AsyncConnectionPool]
        ] = weakref.WeakKeyDictionary()

    @classmethod
    def for_engine(cls, engine: Engine, **statements: ClauseElement) -> AsyncStatements | None:
        """Statements for ``engine`` when it is PostgreSQL through psycopg; None otherwise."""
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
            return None
        return cls(engine, **statements)

    async def first(self, name: str, **params: Any) -> tuple[Any, ...] | None:
        """The first row of statement ``name`` with ``params`` (None when there is none)."""
        rows = await self._fetch(name, params, one=True)
        return rows[0] if rows else None

    async def all(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row of statement ``name`` with ``params``."""
        return await self._fetch(name, params, one=False)

    async def _fetch(self, name: str, params: dict[str, Any], *, one: bool) -> list[tuple[Any, ...]]:
        sql = self._sql[name]
        pool = await self._pool()
        for attempt in (1, 2):
            try:
                async with pool.connection() as conn:
                    cur = await conn.execute(sql, params)
                    if one:
                        row = await cur.fetchone()
                        return [] if row is None else [tuple(row)]
                    return [tuple(r) for r in await cur.fetchall()]
            except psycopg.OperationalError as exc:
                # a connection the server dropped is discarded on its way back; the others that sat idle
                # in the pool are checked before the read is made again
                if attempt == 2 or isinstance(exc, PoolTimeout):
                    raise DatabaseUnavailable(
                        "the database is unavailable; nothing was served, try again"
                    ) from exc
                await pool.check()
        raise AssertionError("unreachable")

    async def write_rows(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` with statement ``name``, which takes them as one JSON array in its parameter
        ``rows`` (see :func:`json_insert`): one statement, so one round trip and one implicit transaction,
        every row written or none. Raises ``psycopg.Error`` if it failed.

        A connection the server dropped is discarded and the statement made once more. If the first try was
        committed after all (the connection died before its answer came), the second finds the same keys:
        that is success, not an error, and nothing is written twice."""
        sql = self._sql[name]
        params = {"rows": json.dumps(rows, default=_json_value, separators=(",", ":"))}
        pool = await self._pool()
        for attempt in (1, 2):
            try:
                async with pool.connection() as conn:
                    await conn.execute(sql, params)
                return
            except psycopg.errors.UniqueViolation:
                if attempt == 2:  # the first try's commit went through: every row is there once
                    return
                raise
            except psycopg.OperationalError as exc:
                if attempt == 2 or isinstance(exc, PoolTimeout):
                    raise
                await pool.check()

    async def _pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        opening = self._pools.get(loop)
        if opening is None:
            # a loop that ended (a test client's) leaves its pool behind: forget it (its connections close
            # as they are collected)
            for ended in [other for other in self._pools if other.is_closed()]:
                self._pools.pop(ended, None)
            opening = self._pools[loop] = loop.create_task(self._open())
        return await asyncio.shield(opening)

    async def _open(self) -> AsyncConnectionPool:
        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=CONNECT_TIMEOUT_S,
            # no server-side prepared statements: measured on the hot path (1 process, anvil, 64 clients),
            # preparing cost the service 0.96-1.26 ms of CPU per recommendation against 0.70-0.79 without,
            # for 0.2 ms less in PostgreSQL
            kwargs={"autocommit": True, "prepare_threshold": None},
            open=False,
            name="knowledger-hot-path",
        )
        await pool.open(wait=False)
        return pool

    async def aclose(self) -> None:
        """Close this event loop's pool (at the app's shutdown)."""
        opening = self._pools.pop(asyncio.get_running_loop(), None)
        if opening is not None:
            await (await opening).close()


def json_insert(table: Table) -> TextClause:
    """``INSERT INTO table SELECT FROM json_populate_recordset(...)`` for PostgreSQL: any number of rows as
    one JSON array (parameter ``rows``, objects keyed by column name), so one statement of one text, one plan
    and one round trip for a batch (:meth:`AsyncStatements.write_rows`). One JSON text is built by the
    standard library's C encoder; a list of values per column was dumped element by element in Python."""
    quote = postgresql.dialect().identifier_preparer.quote
    listed = ", ".join(quote(c.name) for c in table.columns)
    name = quote(table.name)
    return text(
        f"INSERT INTO {name} ({listed}) SELECT {listed} "
        f"FROM json_populate_recordset(CAST(NULL AS {name}), CAST(:rows AS JSON))"
    )


def _json_value(value: Any) -> Any:
    """A row's value that ``json`` does not encode itself: a timestamp (a naive one is UTC)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")


class BatchedLookup:
    """Rows by key for the coroutines of an event loop, the keys asked in one turn of the loop read with one
    statement (what group commit does for writes, for reads).

    ``statement`` of ``statements`` takes the list of keys as its parameter ``param`` and returns rows whose
    first column is the key; :meth:`get` answers the rest of the key's row (None when there is none). Every
    read is sent after its callers asked, so each caller sees what a read of its own would have seen; a
    failed read fails every caller that shared it (``DatabaseUnavailable``). Under load one statement serves
    many requests: one round trip, one send and one wake-up instead of one each."""

    def __init__(
        self, statements: AsyncStatements, statement: str, param: str, *, max_keys: int = 256
    ) -> None:
        self._statements = statements
        self._statement = statement
        self._param = param
        self._max_keys = max_keys
        self._pending: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Any, list[asyncio.Future[tuple[Any, ...] | None]]]
        ] = weakref.WeakKeyDictionary()
        self._reading: set[asyncio.Task[None]] = set()
        #: Statements made and keys asked (for tests and metrics).
        self.reads = 0
        self.asked = 0

    async def get(self, key: Any) -> tuple[Any, ...] | None:
        loop = asyncio.get_running_loop()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = {}
        if not pending:  # the first key of this turn: the read is sent once the turn's callers have asked
            loop.call_soon(self._send, loop)
        future: asyncio.Future[tuple[Any, ...] | None] = loop.create_future()
        pending.setdefault(key, []).append(future)
        self.asked += 1
        return await future

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting = self._pending.pop(loop, {})
        keys = list(waiting)
        for start in range(0, len(keys), self._max_keys):
            part = {k: waiting[k] for k in keys[start : start + self._max_keys]}
            task = loop.create_task(self._read(part))
            self._reading.add(task)
            task.add_done_callback(self._reading.discard)

    async def _read(self, waiting: dict[Any, list[asyncio.Future[tuple[Any, ...] | None]]]) -> None:
        self.reads += 1
        try:
            rows = await self._statements.all(self._statement, **{self._param: list(waiting)})
        except BaseException as exc:  # handed to every caller that shares this read
            for futures in waiting.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:  # the loop is shutting down
                        future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        found = {row[0]: row[1:] for row in rows}
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():  # a caller that gave up (a cancelled request) is skipped
                    future.set_result(found.get(key))
