"""Singleton workers in exactly one process: the settler, the indexer and any other :class:`PeriodicWorker`
that must not run twice at once are started in the process that holds the leadership, and stopped when it
loses it.

The leadership is elected through the database the processes share:

- **PostgreSQL** (:class:`PostgresElection`): a session-level advisory lock, held on a connection of its own
  (never one of the pool's). PostgreSQL releases it when that session ends: the process exits or is killed
  (``kill -9`` included: the kernel closes its socket), or its connection is cut (TCP keepalives and
  ``tcp_user_timeout`` bound how long a silent peer keeps it). The other processes try to take it every
  ``KNOWLEDGER_LEADER_POLL_S`` seconds; the leader checks every as often that its session still holds it,
  and stops its singleton workers the moment it does not.
- **Anything else** (:class:`SoleElection`): SQLite belongs to one process, which leads from the start.

Every round of a singleton worker, wherever it runs (the leader's loop, or an operator's on-demand round in
any process), also holds that worker's *round lock*, a transaction-level advisory lock: two rounds of one
worker never overlap, even while the leadership changes hands. The last fence is the chain itself: the
ledger records a conversion id once (a duplicate is refused), so even a leader cut off from the database
that has not noticed yet cannot settle a conversion twice.

Each process also keeps its election connection open under the name ``knowledger <identity>``
(``application_name``), so any process can tell which one leads (:meth:`Leadership.leader`) and whether
another one is still alive (:meth:`Leadership.alive`, used to tell an interrupted job from a running one).

A new singleton worker is one line in the composition root: ``leadership.add(worker, interval_s)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from backend.services.worker import PeriodicWorker

log = logging.getLogger("knowledger.leadership")

#: The first key of every advisory lock taken here (the second says which lock).
NAMESPACE = zlib.crc32(b"knowledger") & 0x7FFFFFFF
LEADER_KEY = 0
#: Held by a process while it runs its start-up steps (``backend.bootstrap.startup_lock``).
STARTUP_KEY = -1
#: ``application_name`` of a process's election connection: this prefix, then its identity.
APP_PREFIX = "knowledger "


def process_identity() -> str:
    """This process, as other processes see it: ``host:pid:nonce`` (the nonce tells apart two processes
    that got the same pid, e.g. after a container restart; the host name is cut so that the whole fits, with
    its prefix, in PostgreSQL's 63-byte ``application_name``)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(2)}"


def pid_of(identity: str) -> int:
    """The process id in an identity from :func:`process_identity`."""
    return int(identity.split(":")[1])


def round_key(name: str) -> int:
    """The second key of worker ``name``'s round lock (never the leader's)."""
    return 1 + zlib.crc32(name.encode()) % 0x7FFFFFFE


class Election(Protocol):
    #: ``elected`` (the processes share a database and elect one) or ``sole`` (this process is the only one).
    mode: str
    identity: str

    def try_lead(self) -> bool:
        """Take the leadership if it is free; True while this process holds it."""

    def still_leading(self) -> bool:
        """Whether this process still holds the leadership (False as soon as it is unsure)."""

    def keep_present(self) -> None:
        """Keep this process visible to the others without contending for the leadership."""

    def resign(self) -> None:
        """Give the leadership up (and the election connection with it)."""

    def leader(self) -> str | None:
        """The identity of the process that leads, if any."""

    def alive(self, identity: str) -> bool:
        """Whether the process ``identity`` is running."""

    def round_guard(self, name: str) -> AbstractContextManager[None]:
        """Held for one round of the worker ``name``: rounds of one worker wait for each other."""

    def close(self) -> None: ...


class SoleElection:
    """One process on its own database: it leads, always. Rounds need no lock across processes (each worker
    serialises its own rounds)."""

    mode = "sole"

    def __init__(self, identity: str | None = None) -> None:
        self.identity = identity or process_identity()

    def try_lead(self) -> bool:
        return True

    def still_leading(self) -> bool:
        return True

    def keep_present(self) -> None:
        return None

    def resign(self) -> None:
        return None

    def leader(self) -> str | None:
        return self.identity

    def alive(self, identity: str) -> bool:
        return identity == self.identity

    def round_guard(self, name: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def close(self) -> None:
        return None


class PostgresElection:
    """The leadership as a PostgreSQL session-level advisory lock (see the module's docstring)."""

    mode = "elected"

    def __init__(self, engine: Engine, identity: str | None = None, *, silent_peer_s: int = 10) -> None:
        self.identity = identity or process_identity()
        self._engine = engine
        # Its own connections, outside the pool: closing one really ends its session (and frees the lock).
        keepalive = max(1, silent_peer_s // 3)
        self._own = create_engine(
            engine.url,
            poolclass=NullPool,
            connect_args={
                "application_name": (APP_PREFIX + self.identity)[:63],
                "connect_timeout": max(2, silent_peer_s // 2),
                "keepalives": 1,
                "keepalives_idle": keepalive,
                "keepalives_interval": keepalive,
                "keepalives_count": 3,
                "tcp_user_timeout": silent_peer_s * 1000,
                # the server side gives up on a silent client as soon
                "options": (
                    f"-c tcp_keepalives_idle={keepalive} -c tcp_keepalives_interval={keepalive} "
                    "-c tcp_keepalives_count=3"
                ),
            },
        )
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the election connection
    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._own.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def _ask(self, sql: str, **params: Any) -> Any:
        """One statement on the election connection; any failure drops it (and with it the lock)."""
        with self._lock:
            try:
                return self._connection().execute(text(sql), params).scalar()
            except Exception:
                self._drop()
                raise

    def try_lead(self) -> bool:
        try:
            return bool(self._ask("SELECT pg_try_advisory_lock(:ns, :key)", ns=NAMESPACE, key=LEADER_KEY))
        except Exception as exc:
            log.warning("leadership: cannot reach the database (%s)", str(exc).splitlines()[0])
            return False

    def still_leading(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = self._ask(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid = CAST(CAST(:ns AS bigint) AS oid) "
                "AND objid = CAST(CAST(:key AS bigint) AS oid) AND objsubid = 2",
                ns=NAMESPACE,
                key=LEADER_KEY,
            )
        except Exception as exc:
            log.warning("leadership: lost the database (%s)", str(exc).splitlines()[0])
            return False
        return bool(held)

    def keep_present(self) -> None:
        with contextlib.suppress(Exception):
            self._ask("SELECT 1")

    def resign(self) -> None:
        with self._lock:
            self._drop()

    def leader(self) -> str | None:
        with self._engine.connect() as conn:
            name = conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.classid = CAST(CAST(:ns AS bigint) AS oid) "
                    "AND l.objid = CAST(CAST(:key AS bigint) AS oid) AND l.objsubid = 2"
                ),
                {"ns": NAMESPACE, "key": LEADER_KEY},
            ).scalar()
        return None if name is None else str(name).removeprefix(APP_PREFIX)

    def alive(self, identity: str) -> bool:
        if identity == self.identity:
            return True
        with self._engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_stat_activity WHERE application_name = :name LIMIT 1"),
                {"name": (APP_PREFIX + identity)[:63]},
            ).first()
        return found is not None

    @contextlib.contextmanager
    def round_guard(self, name: str) -> Iterator[None]:
        # A transaction-level lock: it goes with the transaction (and the session, if the process dies),
        # so the pooled connection comes back clean.
        with self._engine.connect() as conn:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": NAMESPACE, "key": round_key(name)}
            )
            yield

    def close(self) -> None:
        self.resign()
        self._own.dispose()


def election_for(engine: Engine, identity: str | None = None) -> Election:
    """Elected through PostgreSQL when the database is one; otherwise this process leads alone."""
    if engine.dialect.name == "postgresql":
        return PostgresElection(engine, identity)
    return SoleElection(identity)


class Leadership:
    """Starts the singleton workers when this process wins the election and stops them when it loses it."""

    def __init__(self, election: Election, poll_s: float = 1.0) -> None:
        self._election = election
        self._poll_s = poll_s
        self._singletons: list[tuple[PeriodicWorker[Any], float]] = []
        self._leading = False
        self._run_workers = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: How many times this process took the leadership (for /health and the tests).
        self.terms = 0

    @property
    def identity(self) -> str:
        return self._election.identity

    @property
    def mode(self) -> str:
        return self._election.mode

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def workers(self) -> list[str]:
        return [w.name for w, _ in self._singletons]

    def add(self, worker: PeriodicWorker[Any], interval_s: float) -> None:
        """A singleton worker: its rounds every ``interval_s`` seconds in the leader (0: only on demand),
        each under its round lock."""
        worker.round_guard = self._election.round_guard
        self._singletons.append((worker, interval_s))

    def leader(self) -> str | None:
        """The process that leads (this one's identity when it does); None when unknown."""
        if self._leading:
            return self.identity
        try:
            return self._election.leader()
        except Exception:
            return None

    def alive(self, identity: str) -> bool:
        return self._election.alive(identity)

    # ------------------------------------------------------------------ lifecycle
    def start(self, run_workers: bool = True) -> None:
        """Join the election (with ``run_workers``) or only make this process visible to the others."""
        if self._thread is not None:
            return
        self._run_workers = run_workers
        self._stopping = threading.Event()
        if self._election.mode == "sole":
            if run_workers:
                self._take_over()
            return
        self._tick()  # the first try now: a lone process leads before it serves its first request
        self._thread = threading.Thread(target=self._loop, name="knowledger-leadership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        if self._leading:
            self._step_down()
        self._election.close()

    def _loop(self) -> None:
        while not self._stopping.wait(self._poll_s):
            try:
                self._tick()
            except Exception:  # never let the election thread die
                log.exception("leadership round failed")

    def _tick(self) -> None:
        election = self._election
        if self._leading:
            if not election.still_leading():
                log.warning("%s lost the leadership: stopping %s", self.identity, ", ".join(self.workers))
                self._step_down()
        elif self._run_workers:
            if election.try_lead():
                self._take_over()
        else:
            election.keep_present()

    def _take_over(self) -> None:
        self._leading = True
        self.terms += 1
        log.info("%s leads: starting %s", self.identity, ", ".join(self.workers))
        for worker, interval in self._singletons:
            if interval > 0:
                worker.start(interval)

    def _step_down(self) -> None:
        self._leading = False
        for worker, _ in self._singletons:
            worker.stop()
        self._election.resign()
