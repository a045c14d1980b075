"""Database engine and sessions. SQLite (default, WAL) or PostgreSQL; the schema comes from Alembic."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.sql.expression import ClauseElement
from sqlmodel import create_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,  # one per worker thread under load; a new SQLite connection costs its pragmas
            max_overflow=40,
        )

        background = bool(path) and path != ":memory:"

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            if background:  # checkpoints run in WalCheckpointer's thread, never in a committing request
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        if background:
            checkpointer = WalCheckpointer(path)

            @event.listens_for(engine, "engine_disposed")
            def _stop(_engine: Engine) -> None:
                checkpointer.stop()

        return engine
    engine = create_engine(url, pool_size=20, max_overflow=20)
    _ping_idle_connections(engine)
    return engine


#: A pooled connection unused for longer than this is pinged before it is handed out.
IDLE_PING_S = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling for connections that sat idle: one checked in more than
    :data:`IDLE_PING_S` ago is pinged (``SELECT 1``) on checkout and replaced if the server is gone (the pool
    then connects again). A connection in steady use is not pinged: under load, SQLAlchemy's
    ``pool_pre_ping`` would cost a round trip on every checkout, several per request. A server that dies
    while connections are in use fails those statements; SQLAlchemy then invalidates the pool, and the
    hot path's reads (:class:`DriverReads`) try once more on a fresh connection."""

    @event.listens_for(engine, "checkin")
    def _note(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("checked_in_at")
        if last is not None and time.monotonic() - last <= IDLE_PING_S:
            return
        try:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SELECT 1")
            finally:
                cur.close()
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"a pooled connection is gone ({exc}); connecting again") from exc


class DriverReads:
    """Read-only statements run through the driver's own cursor, for the hot path.

    Each statement is a SQLAlchemy expression, compiled once for the engine's dialect (so the SQL stays
    portable between SQLite and PostgreSQL and is written once); a call checks a connection out of the
    engine's pool, runs each statement with the driver's cursor and returns the connection (the pool resets
    it). This skips SQLAlchemy's per-execution work (execution context, result proxy, type processing),
    which is most of a short read's CPU; so only columns the driver already returns as Python values
    (text, numbers) may be selected."""

    def __init__(self, engine: Engine, **statements: ClauseElement) -> None:
        self._engine = engine
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}
        for name, stmt in statements.items():
            compiled = stmt.compile(dialect=engine.dialect)
            # the parameters' order, where the driver's style is positional
            order = getattr(compiled, "positiontup", None)
            self._compiled[name] = (str(compiled), tuple(order) if order is not None else None)

    @contextlib.contextmanager
    def cursor(self) -> Iterator[_Cursor]:
        """A cursor on a pooled connection, for :meth:`first` (the connection goes back on exit)."""
        handle = _Cursor(self._engine.raw_connection())
        try:
            yield handle
        finally:
            handle.raw.close()

    def first(self, cursor: _Cursor, name: str, **params: Any) -> tuple[Any, ...] | None:
        """The first row of statement ``name`` with ``params`` (None when there is none). A connection
        the server dropped is replaced and the read made once more (a read can be repeated); any other
        failure raises the exception class SQLAlchemy would (a 503 for the service)."""
        sql, order = self._compiled[name]
        args = tuple(params[p] for p in order) if order is not None else params
        dialect = self._engine.dialect
        dbapi = dialect.loaded_dbapi
        for attempt in (1, 2):
            raw = cursor.raw
            cur = raw.cursor()
            try:
                cur.execute(sql, args)
                row = cur.fetchone()
                return None if row is None else tuple(row)
            except dbapi.Error as exc:
                dropped = dialect.is_disconnect(exc, raw.dbapi_connection, cur)
                if not dropped or attempt == 2:
                    raise DBAPIError.instance(
                        sql, args, exc, dbapi.Error, connection_invalidated=dropped
                    ) from exc
                # what SQLAlchemy does on a disconnect: every pooled connection made before now is
                # suspect and replaced when next checked out; then read again on a fresh one
                self._engine.pool._invalidate(raw, exc)
                fresh = self._engine.raw_connection()  # (if this fails, the block's exit returns `raw`)
                raw.close()
                cursor.raw = fresh
            finally:
                with contextlib.suppress(dbapi.Error):
                    cur.close()
        raise AssertionError("unreachable")


class _Cursor:
    """The pooled connection a :meth:`DriverReads.cursor` block reads on (replaced after a disconnect)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw


class WalCheckpointer:
    """Moves a SQLite file's write-ahead log into the database from a thread of its own.

    By default SQLite checkpoints inside whichever commit takes the log past 1,000 pages: that commit copies
    the pages and waits for the disk to sync them, tens of milliseconds on a loaded disk. On the event loop
    (where the serving log commits on the in-process chain) that stalled every request in flight, and it
    was the recommend p99. Here the engine's connections never checkpoint; this thread runs a passive
    checkpoint (it never blocks readers or writers) every ``interval_s``, on its own connection."""

    def __init__(self, path: str, interval_s: float = 0.5) -> None:
        self._path = path
        self._interval = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="knowledger-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stopped.wait(self._interval):
            try:
                if conn is None:
                    conn = sqlite3.connect(self._path, timeout=30, check_same_thread=False)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:  # the file is gone or busy: try again next time
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
