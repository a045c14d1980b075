"""Data sharing (a learner's pseudonymous features, with ``data_sharing`` consent) and marketing audiences
(learners holding ``marketing_contact`` consent)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import SUBJECT_PATTERN, JsonInt
from backend.schemas.recommendations import ConsentVerified

Subject = Annotated[str, Field(pattern=SUBJECT_PATTERN)]
#: The most learners one audience request may name, and the most candidates one audience considers.
MAX_AUDIENCE = 1000


class DataExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The learner's on-chain pseudonym (0x + 64 hex digits).
    subject: Subject


class SharedFeatures(BaseModel):
    """What the platform derived from the learner's activity: never the activity itself, never the
    platform's id for the learner."""

    #: The profile vector the recommender reads: topic weights, then behaviour (``feature_names``).
    vector: list[float]
    feature_names: list[str]
    segment: int | None
    segment_name: str | None
    #: Per product kind, the modelled propensity to take one up (0 to 1).
    propensities: dict[str, float]
    #: When the profile was last derived.
    updated_at: str


class DataExportPublic(BaseModel):
    export_id: str
    subject: str
    partner_id: str
    consent: ConsentVerified
    features: SharedFeatures


class AudienceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The partner's own name for the campaign (kept with the audience).
    campaign: str = Field(min_length=1, max_length=120)
    #: Learners by pseudonym; with ``segment`` too, those of them in the segment.
    subjects: list[Subject] | None = Field(default=None, max_length=MAX_AUDIENCE)
    #: A segment by name (``GET /api/v1/segments``).
    segment: str | None = Field(default=None, min_length=1, max_length=120)
    #: A segment larger than ``limit`` comes in pages: pass the previous answer's ``next_after``.
    after: Subject | None = None
    #: The most candidates this audience considers (1 to 1000).
    limit: JsonInt = Field(default=MAX_AUDIENCE, ge=1, le=MAX_AUDIENCE)


class AudiencePublic(BaseModel):
    audience_id: str
    partner_id: str
    campaign: str
    segment: str | None
    #: The block at which every member held ``marketing_contact`` for this partner.
    consent: ConsentVerified
    #: How many pseudonyms the request named (0 for a segment alone).
    named: int
    #: Known learners among them (or in the segment's page) whose consent was checked.
    candidates: int
    size: int
    members: list[str]
    #: More of the segment follows: ask again with ``after`` set to this.
    next_after: str | None = None
    created_at: str


class SegmentSize(BaseModel):
    name: str
    learners: int


class SegmentList(BaseModel):
    segments: list[SegmentSize]
