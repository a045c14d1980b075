"""Operations: health, the trivial baseline endpoint, settlement and indexing rounds on demand."""

from __future__ import annotations

from pydantic import BaseModel


class ChainHealth(BaseModel):
    #: ``ok`` or ``unreachable``.
    status: str
    chain_id: int | None = None
    block: int | None = None
    target: str | None = None
    detail: str | None = None


class ModelHealth(BaseModel):
    version: str | None
    loaded: bool


class WorkerHealth(BaseModel):
    last_error: str | None


class WebhookHealth(WorkerHealth):
    #: Deliveries waiting for their next attempt, and those given up (replayable by the operator);
    #: absent when the database cannot be read.
    pending: int | None = None
    dead: int | None = None


class IndexerHealth(WorkerHealth):
    next_block: int | None


class LeadershipHealth(BaseModel):
    """Where the singleton workers (settler, indexer) run."""

    #: ``elected``: the processes sharing the PostgreSQL database elect one; ``sole``: this process is the
    #: only one (SQLite).
    mode: str
    #: The process that answered (``host:pid:nonce``).
    process: str
    #: The process that runs the singleton workers (None when no process holds the leadership, or the
    #: database cannot say).
    leader: str | None
    #: Whether the answering process is that one.
    leading: bool
    #: The singleton workers.
    workers: list[str]


class Health(BaseModel):
    """``ok`` when the database, the chain and the model can all serve; ``degraded`` (HTTP 503) otherwise,
    each part saying why."""

    status: str
    database: str
    #: Conversions per outbox state (absent when the database cannot be read).
    outbox: dict[str, int] | None = None
    chain: ChainHealth
    model: ModelHealth
    contracts: dict[str, str]
    indexer: IndexerHealth
    settler: WorkerHealth
    #: The webhook deliverer: its last round's error (``null`` when it ran cleanly) and the queue.
    webhooks: WebhookHealth
    leadership: LeadershipHealth


class Ping(BaseModel):
    status: str


class SettleRound(BaseModel):
    #: What the round did: recovered, settled, rejected, reversed, finalized.
    round: dict[str, int]
    #: Conversions per outbox state afterwards.
    outbox: dict[str, int]
    last_error: str | None


class IndexRound(BaseModel):
    added: int
    next_block: int
