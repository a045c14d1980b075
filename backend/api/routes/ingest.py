"""The platform's data in: batch uploads as jobs, and streamed events (docs/data-schema.md).

The platform (operator key) sends its catalogue (``items``), its learners (``users``) and their behaviour
(``interactions``); a partner (its own key) sends its ``products``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from backend.api.deps import CallerDep, IngestDep
from backend.errors import Forbidden, Unprocessable
from backend.schemas.common import errors
from backend.schemas.ingest import EventBatch, EventsIngested, IngestJobPublic, Table
from backend.services.ingest import OPERATOR_TABLES, PARTNER_TABLES

router = APIRouter(prefix="/api/v1", tags=["ingest"])

Format = Literal["csv", "ndjson", "parquet"]
CONTENT_TYPES = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/ingest/{table}",
    status_code=202,
    response_model=IngestJobPublic,
    responses=errors(401, 403),
    openapi_extra=_BODY,
)
async def ingest(
    table: Table,
    request: Request,
    caller: CallerDep,
    service: IngestDep,
    format: Annotated[Format | None, Query(description="default: from the Content-Type")] = None,
    name: Annotated[str | None, Query(max_length=120, description="the file's name, used in errors")] = None,
) -> IngestJobPublic:
    """Upload one table (CSV, NDJSON or Parquet) as a job: poll it at ``/api/v1/ingest/jobs/{id}``. The file
    is validated whole before anything is written, and written all or nothing."""
    owner, partner = caller
    allowed = PARTNER_TABLES if partner is not None else OPERATOR_TABLES
    if table not in allowed:
        who = "a partner sends only its products" if partner else "products come from their partner's key"
        raise Forbidden(f"table {table!r}: {who}", table=table)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = format or CONTENT_TYPES.get(ctype)
    if fmt is None:
        raise Unprocessable(
            f"format: say it with ?format=csv|ndjson|parquet or a Content-Type of {', '.join(CONTENT_TYPES)}",
            field="format",
        )
    data = await request.body()
    label = name or f"{table}.{fmt}"
    if not data:
        raise Unprocessable(f"{label}: the request has no body: send the file's bytes", field="body")
    return service.submit(table, data, fmt, label, owner, None if partner is None else partner.id)  # type: ignore[arg-type]


@router.get("/ingest/jobs/{job_id}", response_model=IngestJobPublic, responses=errors(401, 403, 404))
def job(
    job_id: Annotated[str, Path(max_length=40)], caller: CallerDep, service: IngestDep
) -> IngestJobPublic:
    return service.job(job_id, caller[0])


@router.post("/events", response_model=EventsIngested, responses=errors(401, 403, 404))
def events(body: EventBatch, caller: CallerDep, service: IngestDep) -> EventsIngested:
    """Stream up to 1,000 behaviour events: validated, written and reflected in the learners' profiles before
    the answer. Events already stored under the same id change nothing."""
    if caller[1] is not None:
        raise Forbidden("behaviour events come from the platform (the operator key)")
    return service.stream(body.events)
