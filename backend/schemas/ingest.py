"""The platform's data in: batch uploads (jobs) and streamed events."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import INTEGER

Id = Annotated[str, Field(min_length=1, max_length=64)]


class IngestJobPublic(BaseModel):
    """A batch upload. ``status``: ``queued``, ``validating``, ``writing``, ``profiles`` (the learners it
    touched), then ``done`` or ``failed`` (``errors`` name the file, the line and the column; nothing was
    written)."""

    id: str
    table: str
    source: str
    status: str
    #: How far the current phase is, from 0 to 1.
    progress: float
    rows: int
    inserted: int
    updated: int
    unchanged: int
    profiles_updated: int
    errors: list[str]
    #: All problems found (``errors`` lists the first 50).
    error_count: int
    #: Seconds each phase took (``reading``, ``validating``, ``writing``, ``profiles``).
    timings: dict[str, float]
    created_at: dt.datetime
    finished_at: dt.datetime | None


class EventIn(BaseModel):
    """One course-side event, as in the ``interactions`` table (docs/data-schema.md)."""

    model_config = ConfigDict(extra="forbid")

    event_id: Id
    user_id: Id
    item_id: Id
    event: Literal["view", "purchase", "completion", "rating"]
    #: Rating (1-5) for ``rating``, amount paid for ``purchase``; otherwise optional.
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    #: ISO 8601 (UTC if no offset) or epoch seconds.
    timestamp: str | Annotated[int, Field(ge=0, le=4_102_444_800), INTEGER]


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventsIngested(BaseModel):
    received: int
    inserted: int
    #: Events already stored under the same id (sending them again changes nothing).
    unchanged: int
    profiles_updated: int
    #: Whether profiles follow the events (the served model carries a profile builder).
    profiles_follow: bool


Table = Literal["items", "users", "interactions", "products"]
