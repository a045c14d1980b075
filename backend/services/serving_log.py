"""The serving log with group commit: a recommendation row is durable before its answer leaves, and the rows
of concurrent requests share one transaction.

Every recommendation served is a row (:class:`backend.models.Recommendation`): the audit reads it, and a
conversion must find the recommendation it names. So the row is committed **before** the answer is returned,
and a row that cannot be committed turns the request into an error (503), never a 200.

Committing one row per request costs a transaction each. Here the rows of concurrent requests share one:

- where requests run on the event loop (the in-process chain: each request is CPU work and never leaves
  the loop), a request queues its row and awaits; the first one in a batch schedules a flush two passes of
  the loop later, so every request that reached the same point by then is in the batch; the flush inserts
  them in one statement, commits once, and wakes each. No thread is involved: a committer thread would
  fight the event loop for the GIL at every SQLite call (measured: batches of one or two);
- where requests await their reads on the event loop (PostgreSQL and a chain on the network), a flush task
  of the loop takes every row queued while it committed the previous batch and writes them with one
  statement (the rows as one JSON array: one round trip and one implicit transaction whatever the
  batch's size) on the loop's own connections (:class:`backend.core.async_db.AsyncStatements`), then wakes
  each waiting request: no thread either. A row that arrives while the flush task is writing starts a
  second one (:data:`MAX_FLUSHERS`), so it does not wait for a commit that began before it came;
- where requests run in worker threads (a chain on the network with SQLite), a committer thread takes every
  row queued while it committed the previous batch, inserts them in one statement, commits once, then wakes
  each waiting request (:meth:`ServingLog.write_sync`, or :meth:`ServingLog.write` awaiting it).

Under load a batch grows with the number of requests in flight; alone, a request waits for one commit, as
before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from backend.core.async_db import AsyncStatements, json_insert
from backend.errors import DatabaseUnavailable
from backend.models import Recommendation

log = logging.getLogger("knowledger")

_INSERT = insert(Recommendation)
#: Any number of rows as one JSON array (PostgreSQL, the loop's flush: one statement per batch).
_INSERT_ROWS = json_insert(Recommendation.__table__)  # type: ignore[attr-defined]

_Waiting = tuple[dict[str, Any], "asyncio.Future[None]"]

#: At most this many rows in one transaction.
MAX_BATCH = 512


#: Batches being committed at once from one event loop (PostgreSQL): a row that arrives while every flush
#: task is writing goes out in a batch of its own at once, instead of after the commit in flight.
MAX_FLUSHERS = 2


@dataclass
class _Flushing:
    """One event loop's rows waiting for a flush task, and its flush tasks (all, and those writing now)."""

    queue: list[_Waiting] = field(default_factory=list)
    flushers: int = 0
    writing: int = 0


class ServingLog:
    def __init__(
        self,
        engine: Engine,
        *,
        inline: bool = False,
        awaits: bool = False,
        max_batch: int = MAX_BATCH,
        max_flushers: int = MAX_FLUSHERS,
    ) -> None:
        """``inline``: :meth:`write` commits on the event loop, in the loop's thread (the in-process chain:
        requests run there); ``awaits``: :meth:`write` commits from a task of the event loop, awaiting the
        database (PostgreSQL only); otherwise through the committer thread."""
        self._engine = engine
        self.inline = inline
        self._statements = AsyncStatements.for_engine(engine, rows=_INSERT_ROWS) if awaits else None
        #: Per event loop awaiting PostgreSQL: the rows waiting for a flush task, and its flush tasks.
        self._flushing: dict[asyncio.AbstractEventLoop, _Flushing] = {}
        self._max_flushers = max_flushers
        self._tasks: set[asyncio.Task[None]] = set()
        self._max_batch = max_batch
        #: Rows waiting for the next flush, per event loop (one in a server; a test client may run several).
        self._loop_batches: dict[
            asyncio.AbstractEventLoop, list[tuple[dict[str, Any], asyncio.Future[None]]]
        ] = {}
        self._cv = threading.Condition()
        self._pending: list[tuple[dict[str, Any], Future[None]]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Transactions committed and rows written (for tests and metrics).
        self.commits = 0
        self.rows = 0

    def submit(self, row: dict[str, Any]) -> Future[None]:
        """Queue ``row`` for the next commit; the future is done once it is committed (or failed)."""
        done: Future[None] = Future()
        with self._cv:
            if self._closed:
                raise DatabaseUnavailable("the service is stopping: nothing was served")
            self._pending.append((row, done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="knowledger-serving-log", daemon=True)
                self._thread.start()
            self._cv.notify()
        return done

    async def write(self, row: dict[str, Any]) -> None:
        """Commit ``row`` (with whatever else is queued) and return once it is durable; raises
        ``DatabaseUnavailable`` (503) if it could not be committed."""
        if self._statements is not None:
            await self._write_awaiting(row)
            return
        if not self.inline:
            await asyncio.wrap_future(self.submit(row))
            return
        if self._closed:
            raise DatabaseUnavailable("the service is stopping: nothing was served")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        batch = self._loop_batches.get(loop)
        if batch is None:
            batch = self._loop_batches[loop] = []
            # two passes of the loop: requests that yield once on their way here (the framework's own
            # checkpoints) still join this batch
            loop.call_soon(loop.call_soon, self._flush_loop_batch, loop)
        batch.append((row, done))
        await done

    def _flush_loop_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._loop_batches.pop(loop, [])
        for start in range(0, len(batch), self._max_batch):
            part = batch[start : start + self._max_batch]
            error = self._commit([row for row, _ in part])
            for _, done in part:
                if done.done():  # the request was cancelled (its client went away): its row stays
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(_refused())

    async def _write_awaiting(self, row: dict[str, Any]) -> None:
        if self._closed:
            raise DatabaseUnavailable("the service is stopping: nothing was served")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        state = self._flushing.get(loop)
        if state is None:
            state = self._flushing[loop] = _Flushing()
        state.queue.append((row, done))
        # a flush task that is not writing now takes this row in its next batch; when every one is writing,
        # another starts (up to MAX_FLUSHERS), so a row never waits for a commit that began before it came
        if state.flushers == state.writing and state.flushers < self._max_flushers:
            state.flushers += 1
            task = loop.create_task(self._flush_task(loop, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await done

    async def _flush_task(self, loop: asyncio.AbstractEventLoop, state: _Flushing) -> None:
        assert self._statements is not None
        queue = state.queue
        try:
            await asyncio.sleep(0)  # requests that reach the log in this pass of the loop join the batch
            while queue:
                batch = queue[: self._max_batch]
                del queue[: self._max_batch]
                rows = [row for row, _ in batch]
                state.writing += 1
                try:
                    await self._statements.write_rows("rows", rows)
                    error = None
                    self.commits += 1
                    self.rows += len(rows)
                except Exception as exc:
                    log.warning("the serving log could not commit %d rows: %s", len(rows), exc)
                    error = exc
                finally:
                    state.writing -= 1
                for _, done in batch:
                    if done.done():  # the request was cancelled (its client went away)
                        continue
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(_refused())
        finally:
            state.flushers -= 1
            if not state.flushers:
                self._flushing.pop(loop, None)
                for _, done in queue:  # only if this task itself was cancelled (the loop is closing)
                    if not done.done():
                        done.set_exception(_refused())

    async def aclose(self) -> None:
        """Close this event loop's connections (at the app's shutdown)."""
        if self._statements is not None:
            await self._statements.aclose()

    def write_sync(self, row: dict[str, Any]) -> None:
        """:meth:`write` for a caller outside the event loop."""
        self.submit(row).result()

    def close(self) -> None:
        """Commit what is queued, then stop the committer."""
        with self._cv:
            self._closed = True
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending:
                    return
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
            if self._commit([row for row, _ in batch]) is not None:  # none of these rows was committed
                for _, done in batch:
                    done.set_exception(_refused())
                continue
            for _, done in batch:
                done.set_result(None)

    def _commit(self, rows: list[dict[str, Any]]) -> Exception | None:
        """Insert ``rows`` in one transaction; the error if it failed (then none of them was written)."""
        try:
            with self._engine.begin() as conn:
                conn.execute(_INSERT, rows)
        except Exception as exc:
            log.warning("the serving log could not commit %d rows: %s", len(rows), exc)
            return exc
        self.commits += 1
        self.rows += len(rows)
        return None


def _refused() -> DatabaseUnavailable:
    return DatabaseUnavailable(
        "the recommendation could not be recorded (the database refused the write); nothing was served, "
        "try again"
    )
