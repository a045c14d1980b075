"""The election of the singleton workers (``backend/services/leadership.py``) and what else several processes
share through PostgreSQL: the directory's version, the runner of an ingest job. Each ``Leadership`` here
stands for one process (its own engine, its own election connection); ``tests/api/test_scale.py`` does the
same with real processes.

Waits are bounded by generous deadlines; nothing asserts on how long anything took."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from backend.core.db import make_engine, migrate
from backend.core.security import key_hash, new_secret
from backend.models import IngestJob, Partner
from backend.services.directory import Directory, mark_changed
from backend.services.leadership import (
    APP_PREFIX,
    Leadership,
    PostgresElection,
    SoleElection,
    election_for,
)
from backend.services.worker import PeriodicWorker

from .conftest import Service

DEADLINE_S = 30.0


class Rounds(PeriodicWorker[int]):
    """A singleton worker that counts its rounds and records when each starts and ends."""

    name = "counter"

    def __init__(self, log: list[str] | None = None, hold_s: float = 0.0) -> None:
        super().__init__()
        self.rounds = 0
        self.log = log if log is not None else []
        self.hold_s = hold_s

    def run_once(self) -> int:
        self.log.append("in")
        time.sleep(self.hold_s)
        self.rounds += 1
        self.log.append("out")
        return self.rounds


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def engines(pg_url: str) -> Iterator[Callable[[], Engine]]:
    made: list[Engine] = []

    def make() -> Engine:
        engine = make_engine(pg_url)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


@pytest.fixture
def processes(engines: Callable[[], Engine]) -> Iterator[Callable[[], tuple[Leadership, Rounds]]]:
    """A "process": a leadership over its own engine, with one singleton worker (rounds every 20 ms)."""
    started: list[Leadership] = []

    def make() -> tuple[Leadership, Rounds]:
        lead = Leadership(PostgresElection(engines()), poll_s=0.05)
        worker = Rounds()
        lead.add(worker, 0.02)
        lead.start()
        started.append(lead)
        return lead, worker

    yield make
    for lead in started:
        lead.stop()


@pytest.mark.postgres
def test_one_process_leads_and_runs_the_workers_the_others_do_not(
    processes: Callable[[], tuple[Leadership, Rounds]],
) -> None:
    (a, wa), (b, wb), (c, wc) = processes(), processes(), processes()
    leaders = [lead for lead in (a, b, c) if lead.leading]
    assert len(leaders) == 1
    leader = leaders[0]
    assert {a.leader(), b.leader(), c.leader()} == {leader.identity}  # every process names the same one
    running = [w for w in (wa, wb, wc) if w.running]
    assert len(running) == 1 and eventually(lambda: running[0].rounds > 0)
    assert a.mode == "elected" and a.workers == ["counter"]


@pytest.mark.postgres
def test_when_the_leader_stops_another_takes_over_and_runs_the_workers(
    processes: Callable[[], tuple[Leadership, Rounds]],
) -> None:
    (a, wa), (b, wb) = processes(), processes()
    first, first_worker = (a, wa) if a.leading else (b, wb)
    second, second_worker = (b, wb) if first is a else (a, wa)
    first.stop()
    assert not first_worker.running
    assert eventually(lambda: second.leading)
    assert eventually(lambda: second_worker.rounds > 0)
    assert second.leader() == second.identity and second.terms == 1


@pytest.mark.postgres
def test_a_leader_whose_database_session_ends_stops_its_workers_and_the_leadership_moves_on(
    processes: Callable[[], tuple[Leadership, Rounds]], pg_url: str
) -> None:
    (a, wa), (b, wb) = processes(), processes()
    leader, worker = (a, wa) if a.leading else (b, wb)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # what a crash of the leader's connection looks like to PostgreSQL
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": APP_PREFIX + leader.identity},
        )
    admin.dispose()
    # exactly one leads again (the same one, re-elected, or the other), and only its worker runs
    assert eventually(lambda: sum(lead.leading for lead in (a, b)) == 1 and (a.terms + b.terms) == 2)
    now = a if a.leading else b
    assert eventually(lambda: (wa if now is a else wb).running and not (wb if now is a else wa).running)
    assert leader.terms + (b if leader is a else a).terms == 2 and worker in (wa, wb)


@pytest.mark.postgres
def test_rounds_of_one_worker_never_overlap_across_processes(engines: Callable[[], Engine]) -> None:
    """The leader's loop and an operator's on-demand round in another process take turns."""
    log: list[str] = []
    workers = []
    for _ in range(2):
        lead = Leadership(PostgresElection(engines()))
        worker = Rounds(log, hold_s=0.01)
        lead.add(worker, 0)  # on demand only
        workers.append((lead, worker))

    def rounds(worker: Rounds) -> None:
        for _ in range(15):
            worker.round()

    threads = [threading.Thread(target=rounds, args=(w,)) for _, w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lead, _ in workers:
        lead.stop()
    assert len(log) == 60
    assert log == ["in", "out"] * 30  # every round ended before the next began, whichever process ran it


def test_a_process_alone_on_sqlite_leads_from_the_start(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    election = election_for(engine)
    assert isinstance(election, SoleElection)
    lead = Leadership(election)
    worker = Rounds()
    lead.add(worker, 0.02)
    lead.start()
    try:
        assert lead.leading and worker.running and lead.leader() == lead.identity
        assert eventually(lambda: worker.rounds > 0)
    finally:
        lead.stop()
    assert not worker.running
    engine.dispose()


@pytest.mark.postgres
def test_a_partner_or_key_changed_through_one_process_is_known_by_the_other_at_once(
    engines: Callable[[], Engine],
) -> None:
    one, two = engines(), engines()
    migrate(one)
    directories = [Directory(e, key_hash("op_" + "x" * 20), shared=True) for e in (one, two)]
    key = new_secret("pk")
    with Session(one) as s:
        s.add(
            Partner(
                id="coop", name="Co-op", address="0x" + "ab" * 20, notice_text="n", api_key_hash=key_hash(key)
            )
        )
        mark_changed(s)
        s.commit()
    directories[0].refresh()
    other = directories[1]
    other.current()
    found = other.partner_for_key(key)
    assert found is not None and found.id == "coop"
    rotated = new_secret("pk")
    with Session(one) as s:
        partner = s.get(Partner, "coop")
        assert partner is not None
        partner.api_key_hash = key_hash(rotated)
        s.add(partner)
        mark_changed(s)
        s.commit()
    other.current()
    assert other.partner_for_key(key) is None  # the old key stops working in the other process at once
    assert other.partner_for_key(rotated) is not None


@pytest.mark.postgres
def test_a_starting_process_fails_only_the_jobs_of_processes_that_are_gone(
    make_service: Callable[..., Service], pg_url: str, engines: Callable[[], Engine]
) -> None:
    svc = make_service(database_url=pg_url)
    alive = Leadership(PostgresElection(engines()))  # another process, running (it keeps its connection)
    alive.start(run_workers=False)
    try:
        with Session(svc.container.engine) as s:
            for job_id, runner in (("job_alive", alive.identity), ("job_gone", "elsewhere:4242:dead")):
                s.add(IngestJob(id=job_id, owner="operator", table_name="items", source="x", runner=runner))
            s.commit()
        svc.container.ingest.start()  # what a process does when it starts
        with Session(svc.container.engine) as s:
            running, gone = s.get(IngestJob, "job_alive"), s.get(IngestJob, "job_gone")
            assert running is not None and running.status == "queued"
            assert gone is not None and gone.status == "failed" and "restart" in gone.errors[0]
    finally:
        alive.stop()
