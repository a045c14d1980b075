"""``knowledger ingest FILE``: send one table (CSV, NDJSON or Parquet) to a running service and follow the
job with a progress bar (upload, validation, writing, profiles).

    knowledger ingest catalogue.csv --table items
    knowledger ingest week48.ndjson --table interactions --api https://knowledger.example --key op_…

The table defaults to the file's name (``items.csv`` → ``items``), the format to its extension. The
operator key comes from ``--key``, ``KNOWLEDGER_OPERATOR_KEY`` or ``<state dir>/operator.key``; a partner
sends its products with its own key. Problems print one per line (file, line, column) and exit 2.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from backend.cli.app import app, err, fail, out

TABLES = ("items", "users", "interactions", "products")
FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet"}
CONTENT_TYPES = {
    "csv": "text/csv",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
PHASES = ("validating", "writing", "profiles")


def _key(key: str | None) -> str:
    if key:
        return key
    if os.environ.get("KNOWLEDGER_OPERATOR_KEY"):
        return os.environ["KNOWLEDGER_OPERATOR_KEY"]
    path = Path(os.environ.get("KNOWLEDGER_STATE_DIR", "var")) / "operator.key"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    fail("--key: no API key: pass --key, set KNOWLEDGER_OPERATOR_KEY, or run next to the service's state dir")


@app.command("ingest")
def ingest_command(
    file: Annotated[Path, typer.Argument(help="The table to send: CSV, NDJSON or Parquet.")],
    table: Annotated[
        str | None, typer.Option("--table", help="items, users, interactions or products.")
    ] = None,
    api: Annotated[str, typer.Option("--api", help="The service's URL.")] = "http://127.0.0.1:8000",
    key: Annotated[
        str | None, typer.Option("--key", help="The operator key (or a partner's, for products).")
    ] = None,
) -> None:
    """Send one table of the platform's data to the service and wait for it to be written (all or nothing;
    sending it twice changes nothing)."""
    import httpx

    if not file.is_file():
        fail(f"FILE: no file at {file}")
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None:
        fail(f"FILE: {file.name}: expected a .csv, .ndjson, .jsonl or .parquet file")
    table = table or file.stem.split(".")[0]
    if table not in TABLES:
        fail(f"--table: {table!r} is not one of {', '.join(TABLES)} (name it, or name the file after it)")
    headers = {"X-API-Key": _key(key), "content-type": CONTENT_TYPES[fmt]}
    size = file.stat().st_size
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f} %"),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        sending = progress.add_task(f"sending {file.name}", total=size)

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as f:
                while block := f.read(1 << 20):
                    progress.advance(sending, len(block))
                    yield block

        try:
            with httpx.Client(base_url=api, timeout=120) as client:
                r = client.post(
                    f"/api/v1/ingest/{table}", content=chunks(), headers=headers, params={"name": file.name}
                )
                if r.status_code != 202:
                    fail(f"{table}: refused ({r.status_code}): {_message(r)}")
                job = r.json()
                tasks = {p: progress.add_task(p, total=1.0) for p in PHASES}
                while job["status"] not in ("done", "failed"):
                    time.sleep(0.2)
                    job = client.get(f"/api/v1/ingest/jobs/{job['id']}", headers=headers).json()
                    _show(progress, tasks, job)
                _show(progress, tasks, job)
        except httpx.HTTPError as exc:
            fail(f"--api: cannot reach {api} ({exc}): is the service running?")
    if job["status"] == "failed":
        for line in job["errors"]:
            err.print(line, markup=False, highlight=False)
        more = job["error_count"] - len(job["errors"])
        if more > 0:
            err.print(f"... and {more} more problem(s)")
        fail(f"{file.name}: {job['error_count']} problem(s); nothing was written")
    out.print_json(
        json.dumps(
            {
                k: job[k]
                for k in ("id", "table", "rows", "inserted", "updated", "unchanged", "profiles_updated")
            }
        )
    )


def _message(r: Any) -> str:
    try:
        return str(r.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return r.text[:200]


def _show(progress: Progress, tasks: dict[str, Any], job: dict[str, Any]) -> None:
    status = job["status"]
    for phase in PHASES:
        if status == "done" or (status in PHASES and PHASES.index(phase) < PHASES.index(status)):
            progress.update(tasks[phase], completed=1.0)
        elif phase == status:
            progress.update(tasks[phase], completed=float(job["progress"]))
