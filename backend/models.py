"""Persistence: SQLModel tables and the API's request/response families (``XBase``/``XCreate``/``X``/
``XPublic``).

What lives here and nowhere on chain: the link between a platform user and their pseudonym (through the
per-user key), profiles, the catalogue, recommendations served, the conversions outbox and an index of the
chain's events. What the chain holds instead: pseudonyms, hashes and amounts (see ARCHITECTURE.md).
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import JSON, BigInteger, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.schemas.common import JsonInt
from backend.schemas.users import ProfileData

SLUG = re.compile(r"^[a-z][a-z0-9-]*$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- partners
class PartnerBase(SQLModel):
    id: str = Field(primary_key=True, min_length=2, max_length=40)
    name: str = Field(min_length=1, max_length=120)
    kind: str = Field(default="bank", max_length=40)
    address: str = Field(max_length=42, unique=True)
    notice_text: str = Field(min_length=1, max_length=4000)


class PartnerCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    #: A slug: lower-case letters, digits and dashes, starting with a letter.
    id: str = Field(min_length=2, max_length=40, schema_extra={"pattern": SLUG.pattern})
    name: str = Field(min_length=1, max_length=120)
    kind: str = Field(default="bank", max_length=40)
    #: The partner's account on chain: 0x and 40 hex digits.
    address: str = Field(min_length=42, max_length=42, schema_extra={"pattern": ADDRESS.pattern})
    notice_text: str = Field(min_length=1, max_length=4000)


class Partner(PartnerBase, table=True):
    notice_version: int = 0
    api_key_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow)


class PartnerPublic(SQLModel):
    id: str
    name: str
    kind: str
    address: str
    notice_text: str
    notice_version: int


class PartnerCreated(PartnerPublic):
    api_key: str


class NoticeUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    notice_text: str = Field(min_length=1, max_length=4000)


# ---------------------------------------------------------------------------------------------- catalogue
class Product(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    partner_id: str = Field(foreign_key="partner.id", index=True)
    name: str
    kind: str
    description: str = ""
    risk_level: int = 0
    min_premium: float = 0.0


class KnowledgeItem(SQLModel, table=True):
    __tablename__ = "knowledge_item"

    id: str = Field(primary_key=True, max_length=64)
    #: The item's row in the model's topic space (what a profile's course indices point at); None for an
    #: item ingested after the served model was trained.
    position: int | None = Field(default=None, unique=True)
    kind: str
    title: str
    description: str = ""
    category: str = ""
    price: float = 0.0
    level: str = ""


# ---------------------------------------------------------------------------------------------- users
class UserCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    #: The knowledge platform's own id for the learner (kept off chain and out of partner responses).
    platform_user_id: str = Field(min_length=1, max_length=120)
    #: A wallet the learner signs consents with (then the on-chain subject is the wallet, not a pseudonym).
    wallet: str | None = Field(
        default=None, min_length=42, max_length=42, schema_extra={"pattern": ADDRESS.pattern}
    )


class User(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    platform_user_id: str | None = Field(default=None, unique=True, max_length=120)
    pseudonym: str = Field(index=True, unique=True, max_length=66)
    user_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    wallet: str | None = Field(default=None, max_length=42)
    token_hash: str | None = Field(default=None, index=True, unique=True, max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow)
    erased_at: dt.datetime | None = None
    #: Coarse attributes the platform may send (see docs/data-schema.md, table ``users``).
    age_band: str | None = Field(default=None, max_length=8)
    region: str | None = Field(default=None, max_length=40)
    life_stage: str | None = Field(default=None, max_length=24)


class UserPublic(SQLModel):
    id: str
    pseudonym: str
    wallet: str | None
    created_at: dt.datetime


class UserCreated(UserPublic):
    token: str


class Profile(SQLModel, table=True):
    """A learner's derived profile (``recommender.profiles.Profile.to_dict``) and the catalogue rows the
    model needs: course indices for explanations, products already held.

    All three are in the space of one model version, ``model_version``: its topics, its course rows, its
    product rows. A request served by another version derives the profile again for that version first
    (:class:`backend.services.profiles.ProfileRefresher`)."""

    user_id: str = Field(primary_key=True, foreign_key="user.id")
    #: The model version the profile was built for (None: built before versions were recorded, i.e. for the
    #: version served when the service first starts after the upgrade, which stamps it).
    model_version: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    course_indices: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    product_indices: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: dt.datetime = Field(default_factory=utcnow)


class ProfileUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    #: ``recommender.profiles.Profile.to_dict()`` output (topics, behaviour, segment, propensities).
    profile: ProfileData
    course_ids: list[str] = Field(default_factory=list, max_length=5000)
    product_ids: list[str] = Field(default_factory=list, max_length=500)


class LearningEvent(SQLModel, table=True):
    """One course-side event the platform sent (view, purchase, completion, rating), kept to build the
    learner's profile; deleted when the learner is erased."""

    __tablename__ = "learning_event"

    id: int | None = Field(default=None, primary_key=True)
    #: The platform's own id of the event: sending it again changes nothing.
    event_id: str = Field(max_length=64, unique=True)
    user_id: str = Field(foreign_key="user.id", index=True)
    item_id: str = Field(max_length=64)
    event: str = Field(max_length=16)
    value: float | None = None
    occurred_at: dt.datetime
    ingested_at: dt.datetime = Field(default_factory=utcnow)


class ErasedLearner(SQLModel, table=True):
    """A learner who was erased, as a keyed hash of the platform's id (never the id itself): their events and
    attributes are refused from then on, so nothing re-links them."""

    __tablename__ = "erased_learner"

    digest: str = Field(primary_key=True, max_length=64)
    erased_at: dt.datetime = Field(default_factory=utcnow)


class IngestJob(SQLModel, table=True):
    """A batch upload: validated whole, written whole (all or nothing), then the profiles it touched."""

    __tablename__ = "ingest_job"

    id: str = Field(primary_key=True, max_length=40)
    #: Who sent it: ``operator``, or the partner's id (a partner sees only its own jobs).
    owner: str = Field(max_length=40)
    table_name: str = Field(max_length=20)
    source: str = Field(max_length=200)
    status: str = Field(default="queued", max_length=20)
    #: How far the current phase is, from 0 to 1 (validating, writing, updating profiles).
    progress: float = 0.0
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    profiles_updated: int = 0
    errors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error_count: int = 0
    #: Seconds each phase took (``reading``, ``validating``, ``writing``, ``profiles``).
    timings: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    #: The process that runs it (``host:pid:nonce``): a process starting up fails the unfinished jobs of
    #: processes that are gone, never those of one still running.
    runner: str | None = Field(default=None, max_length=80)


# ---------------------------------------------------------------------------------------------- models
class ModelStatus(StrEnum):
    TRAINING = "training"  # a training job is running (``progress``)
    FAILED = "failed"  # training failed (``error``); nothing was registered
    CANDIDATE = "candidate"  # trained and evaluated; the quality gate decides at promotion
    REJECTED = "rejected"  # a promotion was refused by the quality gate (``gate``)
    SERVED = "served"  # the version every process serves
    RETIRED = "retired"  # served before; ``knowledger model rollback`` can serve it again


class ModelVersion(SQLModel, table=True):
    """The model registry: every version trained or imported, its artifact, what it was trained on and its
    held-out metrics on its own split, and the quality gate's verdict against the version it would replace."""

    __tablename__ = "model_version"

    version: str = Field(primary_key=True, max_length=64)
    model_name: str = Field(max_length=40)
    status: str = Field(default=ModelStatus.TRAINING, max_length=16, index=True)
    #: ``demo`` (the demo world), ``ingested`` (the platform's own data), ``imported`` (an artifact found
    #: in ``KNOWLEDGER_MODEL_PATH``).
    source: str = Field(max_length=16)
    progress: float = 0.0
    error: str | None = None
    #: What it was trained on: table sizes, the split's cutoff and a fingerprint of the held-out set.
    trained_on: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    #: Held-out metrics of this version on its split, measured through the serving path.
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    #: The quality gate: this version against the served one, both scored on this version's held-out split.
    gate: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    #: The model's rows: product ids and course ids in the order its arrays use.
    product_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    course_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    artifact_sha256: str | None = Field(default=None, max_length=64)
    artifact_bytes: int = 0
    #: The artifact directory as a zip archive: any process on any host loads the version from here.
    artifact: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: dt.datetime = Field(default_factory=utcnow)
    finished_at: dt.datetime | None = None


class ModelEvent(SQLModel, table=True):
    """The registry's history: each promotion, rollback, refusal and import, by whom, from which version."""

    __tablename__ = "model_event"

    id: int | None = Field(default=None, primary_key=True)
    action: str = Field(max_length=16)  # promoted, rolled_back, refused, imported
    version: str = Field(max_length=64)
    previous: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: dt.datetime = Field(default_factory=utcnow)


# ---------------------------------------------------------------------------------------------- consent
class ConsentAction(StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"


class ConsentEvent(SQLModel, table=True):
    """One consent change made through this service, with its receipt and transaction."""

    __tablename__ = "consent_event"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str | None = Field(default=None, index=True, foreign_key="user.id")
    pseudonym: str = Field(index=True, max_length=66)
    partner_id: str = Field(foreign_key="partner.id")
    purpose: str
    action: str
    path: str  # "registrar" or "wallet"
    receipt_id: str | None = Field(default=None, index=True, max_length=40)
    receipt: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    receipt_hash: str | None = None
    tx_hash: str
    block_number: int
    chain_time: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow)


# ---------------------------------------------------------------------------------------------- agreements
class Agreement(SQLModel, table=True):
    """Mirror of an on-chain agreement: its terms (the chain keeps only their hash) and status."""

    id: int = Field(primary_key=True)  # the on-chain agreement id
    partner_id: str = Field(foreign_key="partner.id", index=True)
    terms: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    terms_hash: str
    status: str = "proposed"
    proposed_tx: str | None = None
    updated_at: dt.datetime = Field(default_factory=utcnow)


# ---------------------------------------------------------------------------------------------- serving
class Recommendation(SQLModel, table=True):
    """A recommendation served: who (pseudonym), for which partner, what, which model, the block at
    which consent was verified, and, while an A/B experiment runs, the arm as ``<experiment>:<arm>``
    (e.g. ``ranker-v1:popularity``; None outside an experiment)."""

    id: str = Field(primary_key=True, max_length=40)
    pseudonym: str = Field(index=True, max_length=66)
    partner_id: str = Field(foreign_key="partner.id", index=True)
    products: list[str] = Field(sa_column=Column(JSON, nullable=False))
    model_version: str
    consent_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    served_at: int = Field(sa_column=Column(BigInteger, nullable=False))  # chain time
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)  # the funnel's time axis
    arm: str | None = Field(default=None, max_length=32)


class ConversionState(StrEnum):
    PENDING = "pending"  # in the outbox, not yet sent
    SUBMITTING = "submitting"  # a transaction may be in flight: checked against the chain before a retry
    SETTLED = "settled"  # recorded on chain, provisional
    REVERSAL_PENDING = "reversal_pending"
    REVERSED = "reversed"
    FINAL = "final"
    REJECTED = "rejected"  # the chain refused it (reason in ``error``)


class ConversionCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    recommendation_id: str = Field(min_length=1, max_length=40)
    #: The partner's own order or policy id: reporting it twice settles once.
    order_id: str = Field(min_length=1, max_length=120)
    #: The premium or order value in the currency's minor unit (fen, cents).
    value: JsonInt = Field(gt=0, le=10**15)  # JSON true is not the number 1; 10.0 is 10
    #: The product converted (optional; one of the recommendation's products).
    product_id: str | None = Field(default=None, max_length=40)


class Conversion(SQLModel, table=True):
    """The conversions outbox: a durable row per reported conversion, settled on chain in batches."""

    __table_args__ = (UniqueConstraint("partner_id", "order_id", name="uq_conversion_order"),)

    id: int | None = Field(default=None, primary_key=True)  # also the on-chain conversion id
    partner_id: str = Field(foreign_key="partner.id", index=True)
    order_id: str = Field(max_length=120)
    recommendation_id: str = Field(foreign_key="recommendation.id", index=True)
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    pseudonym: str = Field(max_length=66)
    product_id: str | None = None
    value: int = Field(sa_column=Column(BigInteger, nullable=False))
    occurred_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    recommended_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    state: str = Field(default=ConversionState.PENDING, index=True)
    commission: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    amounts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    batch_id: int | None = None
    batch_index: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    reversal_tx_hash: str | None = None
    error: str | None = None
    attempts: int = 0
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class ConversionPublic(SQLModel):
    """A conversion as its partner sees it; ``amounts`` are each party's share in minor units."""

    id: int
    order_id: str
    recommendation_id: str
    agreement_id: int
    product_id: str | None
    value: int
    occurred_at: int
    state: str
    commission: int
    amounts: list[int]
    batch_id: int | None
    tx_hash: str | None
    block_number: int | None
    reversal_tx_hash: str | None
    error: str | None


# ---------------------------------------------------------------------------------------------- indexer
class ChainEvent(SQLModel, table=True):
    """An indexed log of one of the three contracts."""

    __tablename__ = "chain_event"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_chain_event_log"),)

    id: int | None = Field(default=None, primary_key=True)
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    log_index: int
    tx_hash: str = Field(max_length=66)
    contract: str = Field(max_length=40)
    name: str = Field(index=True, max_length=60)
    agreement_id: int | None = Field(default=None, index=True)
    args: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ServiceMeta(SQLModel, table=True):
    """Key/value facts about this database, e.g. which chain and deployment it belongs to."""

    __tablename__ = "service_meta"

    key: str = Field(primary_key=True, max_length=60)
    value: str


class IndexerCursor(SQLModel, table=True):
    __tablename__ = "indexer_cursor"

    name: str = Field(primary_key=True, max_length=40)
    next_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: dt.datetime = Field(default_factory=utcnow)
