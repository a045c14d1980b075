"""``knowledger audit`` and ``knowledger export-log``: replay every consent-gated answer against the chain.

    knowledger export-log --database URL --out serving-log.jsonl
    knowledger audit --log serving-log.jsonl --rpc-url URL      # or --database URL instead of --log

One line per violation on stdout, then a JSON summary; exit 0 when every answer held, 1 when any did not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backend.cli.app import app, err, fail, out, user_errors

EXIT_VIOLATIONS = 1


def _engine(url: str) -> object:
    from backend.core.db import make_engine

    if not url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
        fail(f"--database: expected sqlite:///path.db or postgresql+psycopg://user@host/db, got {url!r}")
    return make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


@app.command("export-log")
def export_log_command(
    database: Annotated[str, typer.Option("--database", help="The service's database URL.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the log (JSON lines).")],
) -> None:
    """Export the serving log (every consent-gated answer: pseudonym, partner, block, purposes) for an
    auditor, who can then run `knowledger audit --log FILE` without access to the database."""
    from backend.audit import AuditError, export_log

    with user_errors():
        engine = _engine(database)
        try:
            with out_file.open("w", encoding="utf-8") as f:
                n = export_log(engine, f)  # type: ignore[arg-type]
        except AuditError as exc:
            fail(f"--database: {exc}")
    err.print(f"{n} answers written to {out_file}")


@app.command("audit")
def audit_command(
    rpc_url: Annotated[
        str, typer.Option("--rpc-url", help="A JSON-RPC node of the chain (an archive node).")
    ],
    log: Annotated[Path | None, typer.Option("--log", help="An exported serving log (export-log).")] = None,
    database: Annotated[
        str | None, typer.Option("--database", help="Or the service's database URL, read directly.")
    ] = None,
) -> None:
    """Replay every consent-gated answer (recommendations, data exports, audience members) against the
    consent registry at the block it names: one line per answer whose purposes the chain did not hold there,
    then a JSON summary. Exit 1 if any."""
    from backend.audit import AuditError, answers_from_database, header_from_database, read_log, replay
    from backend.chain import connect_rpc

    if (log is None) == (database is None):
        fail("give the serving log as --log FILE or --database URL (one of them)")
    with user_errors():
        try:
            if log is not None:
                if not log.is_file():
                    fail(f"--log: no file at {log}")
                header, answers = read_log(log)
            else:
                engine = _engine(database or "")
                header = header_from_database(engine)  # type: ignore[arg-type]
                answers = list(answers_from_database(engine))  # type: ignore[arg-type]
            client = connect_rpc(rpc_url, header.chain_id, url_option="--rpc-url")
            with Progress(
                TextColumn("replaying answers against the chain"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task(
                    "audit", total=len({(a.subject, a.partner, a.block) for a in answers})
                )
                violations, summary = replay(
                    client, header, answers, progress=lambda done: progress.update(task, completed=done)
                )
        except AuditError as exc:
            fail(str(exc))
    for v in violations:
        out.print(v.line(), markup=False, highlight=False)
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    if violations:
        raise typer.Exit(EXIT_VIOLATIONS)
