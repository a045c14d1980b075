"""The platform's data in: its catalogue, its learners' coarse attributes and behaviour events, and partners'
products, validated against the documented schema and written all or nothing.

Two ways in:

- **batch** (:meth:`IngestService.submit`): a CSV, NDJSON or Parquet file for one table becomes a job that
  runs in the background, one at a time; the caller polls it (``GET /api/v1/ingest/jobs/{id}``, or
  ``knowledger ingest`` with a progress bar). A job validates the whole file first (the schema's rules,
  then what only the service knows), writes it in one transaction, then updates the profiles of the
  learners whose events it added;
- **stream** (:meth:`IngestService.stream`): up to 1,000 events in a request, validated, written and
  reflected in the learners' profiles before the answer.

Sending the same data twice changes nothing (events are keyed by the platform's event id). Events of an
erased learner are refused.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.errors import NotFound, Unprocessable
from backend.models import IngestJob, utcnow
from backend.schemas.ingest import EventIn, EventsIngested, IngestJobPublic
from backend.services import ingest_tables
from backend.services.directory import Directory, mark_changed
from backend.services.erasure import ErasureRegister
from backend.services.leadership import Leadership
from backend.services.profiles import ProfileRefresher
from recommender.data.readers import FORMATS, Format, read_table
from recommender.data.validation import Problems, Source, validate_tables

log = logging.getLogger("knowledger.ingest")
MAX_ERRORS = 50
#: Who may send which table: the platform (operator) its catalogue, learners and events; a partner its
#: products.
OPERATOR_TABLES = ("items", "users", "interactions")
PARTNER_TABLES = ("products",)
#: Tables the directory keeps in memory (a change to them is announced to every process).
DIRECTORY_TABLES = ("items", "products")


def job_public(job: IngestJob) -> IngestJobPublic:
    return IngestJobPublic(
        id=job.id,
        table=job.table_name,
        source=job.source,
        status=job.status,
        progress=round(job.progress, 4),
        rows=job.rows,
        inserted=job.inserted,
        updated=job.updated,
        unchanged=job.unchanged,
        profiles_updated=job.profiles_updated,
        errors=list(job.errors),
        error_count=job.error_count,
        timings=dict(job.timings),
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


class IngestService:
    def __init__(
        self,
        engine: Engine,
        erasure: ErasureRegister,
        profiles: ProfileRefresher,
        directory: Directory,
        processes: Leadership,
    ) -> None:
        self._engine = engine
        self._processes = processes
        self._erasure = erasure
        self._profiles = profiles
        self._directory = directory
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        #: Progress of the running job's current phase, kept in memory: writing it to the job's row while
        #: the job's own transaction holds the database would wait on itself (SQLite has one writer).
        self._live: dict[str, tuple[str, float]] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Accept jobs; jobs that a process which is gone left unfinished are marked failed (send them again:
        it is harmless). Jobs of a process still running (several share the database) are left to it."""
        with Session(self._engine) as s:
            for job in s.exec(
                select(IngestJob).where(col(IngestJob.status).not_in(["done", "failed"]))
            ).all():
                if job.runner is not None and self._processes.alive(job.runner):
                    continue
                job.status, job.finished_at = "failed", utcnow()
                job.errors = [
                    "interrupted by a restart of the service before it finished: send the file again"
                ]
                job.error_count = 1
                s.add(job)
            s.commit()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knowledger-ingest")

    def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=False)

    # ------------------------------------------------------------------ batch
    def submit(
        self, table: str, data: bytes, fmt: Format, label: str, owner: str, partner_id: str | None = None
    ) -> IngestJobPublic:
        """Queue ``data`` (one table in ``fmt``) as a job; returns it at once."""
        if fmt not in FORMATS:
            raise Unprocessable(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
        job = self._queue(table, label, owner)
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knowledger-ingest")
            self._executor.submit(self._run, job.id, table, data, fmt, label, partner_id)
        return job_public(job)

    def _queue(self, table: str, label: str, owner: str) -> IngestJob:
        """The job's row, ``queued`` and run by this process."""
        job = IngestJob(
            id="job_" + secrets.token_hex(8),
            owner=owner,
            table_name=table,
            source=label[:200],
            status="queued",
            runner=self._processes.identity,
        )
        with Session(self._engine, expire_on_commit=False) as s:
            s.add(job)
            s.commit()
        return job

    def job(self, job_id: str, owner: str) -> IngestJobPublic:
        with Session(self._engine) as s:
            job = s.get(IngestJob, job_id)
            if job is None or (owner != "operator" and job.owner != owner):
                raise NotFound(f"unknown job {job_id!r}")
            public = job_public(job)
        live = self._live.get(job_id)
        if live is not None and public.status not in ("done", "failed"):
            public.status, public.progress = live[0], round(live[1], 4)
        return public

    def run_now(
        self, table: str, data: bytes, fmt: Format, label: str, owner: str, partner_id: str | None = None
    ) -> IngestJobPublic:
        """Run a job in this thread (tests, the CLI against a stopped service) and return it finished."""
        job = self._queue(table, label, owner)
        self._run(job.id, table, data, fmt, label, partner_id)
        return self.job(job.id, owner)

    def _update(self, job_id: str, **fields: Any) -> None:
        with Session(self._engine) as s:
            job = s.get(IngestJob, job_id)
            assert job is not None
            for k, v in fields.items():
                setattr(job, k, v)
            s.add(job)
            s.commit()

    def _progress(self, job_id: str, phase: str) -> Any:
        def report(fraction: float) -> None:
            self._live[job_id] = (phase, fraction)

        return report

    def _run(
        self, job_id: str, table: str, data: bytes, fmt: Format, label: str, partner_id: str | None
    ) -> None:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[phase] = round(now - clock, 4)
            clock = now

        try:
            self._update(job_id, status="validating", progress=0.0)
            problems = Problems(MAX_ERRORS)
            read = read_table(data, fmt, label, problems)
            lap("reading")
            frame: pd.DataFrame | None = None
            source: Source | None = None
            if read is not None:
                frame, source = validate_tables({table: read}, problems)[table], read[1]
            self._update(job_id, rows=0 if frame is None else len(frame), progress=1.0)
            if frame is not None and source is not None and not problems.total:
                with Session(self._engine) as s:
                    ingest_tables.check(s, table, frame, source, problems, self._erasure, partner_id)
            lap("validating")
            if problems.total or frame is None:
                self._fail(job_id, problems, timings)
                return
            with Session(self._engine, expire_on_commit=False) as s:
                outcome = ingest_tables.write(s, table, frame, partner_id, self._progress(job_id, "writing"))
                if table in DIRECTORY_TABLES:
                    mark_changed(s)
                s.commit()
            lap("writing")
            self._update(
                job_id,
                inserted=outcome.inserted,
                updated=outcome.updated,
                unchanged=outcome.unchanged,
                timings=dict(timings),
            )
            if table in DIRECTORY_TABLES:
                self._directory.refresh()
            refreshed = 0
            if outcome.learners:
                self._update(job_id, status="profiles", progress=0.0)
                self._live[job_id] = ("profiles", 0.0)
                refreshed = self._profiles.refresh(outcome.learners)
                lap("profiles")
            self._update(
                job_id,
                status="done",
                progress=1.0,
                profiles_updated=refreshed,
                timings=timings,
                finished_at=utcnow(),
            )
            self._live.pop(job_id, None)
        except Exception as exc:  # the transaction rolled back: nothing of the file was written
            log.exception("ingest job %s failed", job_id)
            self._live.pop(job_id, None)
            self._update(
                job_id,
                status="failed",
                errors=[
                    f"{label}: the service failed while writing ({type(exc).__name__}); nothing was written"
                ],
                error_count=1,
                timings=timings,
                finished_at=utcnow(),
            )

    def _fail(self, job_id: str, problems: Problems, timings: dict[str, float]) -> None:
        self._update(
            job_id,
            status="failed",
            errors=problems.messages(),
            error_count=problems.total,
            timings=timings,
            finished_at=utcnow(),
        )

    # ------------------------------------------------------------------ stream
    def stream(self, events: list[EventIn]) -> EventsIngested:
        """Validate, write and reflect ``events`` in the learners' profiles before returning."""
        problems = Problems(MAX_ERRORS)
        raw = pd.DataFrame([e.model_dump() for e in events]).astype(object)
        raw = raw.where(raw.notna(), None)
        source = Source("request events", "row", pd.RangeIndex(1, len(raw) + 1).to_numpy())
        frame = validate_tables({"interactions": (raw, source)}, problems)["interactions"]
        with Session(self._engine, expire_on_commit=False) as s:
            if not problems.total:
                ingest_tables.check(s, "interactions", frame, source, problems, self._erasure, None)
            if problems.total:
                raise Unprocessable(
                    f"{problems.total} problem(s) in the events; nothing was written: "
                    + "; ".join(problems.messages()[:3]),
                    problems=problems.messages(),
                )
            outcome = ingest_tables.write(s, "interactions", frame, None, lambda _f: None)
            s.commit()
        refreshed = self._profiles.refresh(outcome.learners)
        return EventsIngested(
            received=len(events),
            inserted=outcome.inserted,
            unchanged=outcome.unchanged,
            profiles_updated=refreshed,
            profiles_follow=self._profiles.ready,
        )
