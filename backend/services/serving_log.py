"""The serving log with group commit: a recommendation row is durable before its answer leaves, and the rows
of concurrent requests share one transaction.

Every recommendation served is a row (:class:`backend.models.Recommendation`): the audit reads it, and a
conversion must find the recommendation it names. So the row is committed **before** the answer is returned,
and a row that cannot be committed turns the request into an error (503), never a 200.

Committing one row per request costs a transaction each. Here one committer thread takes every row queued
while it committed the previous batch, inserts them in one statement and commits once, then wakes each
waiting request (:meth:`ServingLog.write` for the event loop, :meth:`ServingLog.write_sync` for a worker
thread). Under load the batch grows with the number of requests in flight; alone, a request waits for one
commit, as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from backend.errors import DatabaseUnavailable
from backend.models import Recommendation

log = logging.getLogger("knowledger")

_INSERT = insert(Recommendation)

#: At most this many rows in one transaction.
MAX_BATCH = 512


class ServingLog:
    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
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
        await asyncio.wrap_future(self.submit(row))

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
            try:
                with self._engine.begin() as conn:
                    conn.execute(_INSERT, [row for row, _ in batch])
            except Exception as exc:  # every waiter fails: none of these rows was committed
                log.warning("the serving log could not commit %d rows: %s", len(batch), exc)
                for _, done in batch:
                    done.set_exception(
                        DatabaseUnavailable(
                            "the recommendation could not be recorded (the database refused the write); "
                            "nothing was served, try again"
                        )
                    )
                continue
            self.commits += 1
            self.rows += len(batch)
            for _, done in batch:
                done.set_result(None)
