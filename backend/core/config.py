"""Service settings (pydantic-settings, ``KNOWLEDGER_*`` environment variables or a ``.env`` file).

Served by the cached dependency :func:`get_settings`; tests build their own ``Settings`` and override it.
A bad value stops start-up with :func:`describe_settings_error`, a message that names the variable.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from backend.chain import ChainSettings, ChainTarget

ENV_PREFIX = "KNOWLEDGER_"

#: The arms an experiment can run: the served model and the non-personalised baseline.
EXPERIMENT_ARM_NAMES = ("hybrid", "popularity")
#: A recommendation row stores ``<experiment>:<arm>`` (at most 32 characters), so the name is short.
_EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}")


@lru_cache(maxsize=16)
def parse_experiment_arms(value: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``"hybrid=0.5,popularity=0.5"`` -> ``(("hybrid", "popularity"), (0.5, 0.5))``; ``""`` -> no arms.

    Raises ``ValueError`` naming what is wrong (unknown arm, bad weight, fewer than two arms)."""
    if not value.strip():
        return (), ()
    names: list[str] = []
    weights: list[float] = []
    for part in value.split(","):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"expected arm=weight pairs such as 'hybrid=0.5,popularity=0.5', got {part!r}")
        if name not in EXPERIMENT_ARM_NAMES:
            raise ValueError(f"unknown arm {name!r}; expected one of {', '.join(EXPERIMENT_ARM_NAMES)}")
        if name in names:
            raise ValueError(f"arm {name!r} is listed twice")
        try:
            weight = float(raw)
        except ValueError:
            raise ValueError(f"weight of arm {name!r} must be a number, got {raw.strip()!r}") from None
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weight of arm {name!r} must be positive, got {raw.strip()!r}")
        names.append(name)
        weights.append(weight)
    if len(names) < 2:
        raise ValueError("an experiment needs at least two arms, e.g. 'hybrid=0.5,popularity=0.5'")
    return tuple(names), tuple(weights)


class Settings(ChainSettings):
    """Everything the service reads at start-up. The chain fields come from :class:`ChainSettings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    #: Where the service keeps its state by default (the SQLite file, generated keys, the model).
    #: (``KNOWLEDGER_DATA_DIR`` is the shared *input* data folder the recommender reads, not this.)
    state_dir: Path = Path("var")
    #: SQLAlchemy URL: ``sqlite:///var/knowledger.db`` (default) or ``postgresql+psycopg://…``.
    database_url: str = ""
    #: The hybrid model artifact directory served by the recommender (``knowledger train`` writes it).
    model_path: Path | None = None
    #: The operator/registrar API key. Generated into ``<state_dir>/operator.key`` on a local chain if unset.
    operator_key: SecretStr | None = None
    #: Seconds between settlement rounds of the conversions outbox (0: only when asked, e.g. in tests).
    settle_interval_s: float = Field(default=2.0, ge=0)
    #: Most conversions settled in one on-chain batch.
    settle_batch_size: int = Field(default=100, ge=1, le=500)
    #: Seconds between indexer polls (0: only when asked).
    index_interval_s: float = Field(default=1.0, ge=0)
    #: Blocks an event must be buried under before the indexer takes it (None: 0 on local chains, else
    #: ``KNOWLEDGER_CONFIRMATIONS``).
    index_confirmations: int | None = Field(default=None, ge=0)
    #: Seconds an idle keep-alive connection stays open. Longer than the idle timeout of the load balancers
    #: in front (60 s for most), so the server never closes a connection that a client is reusing that
    #: instant (the client would see the connection reset, not an answer).
    keep_alive_s: int = Field(default=75, ge=1, le=3600)
    #: Against a chain on the network, requests that ask it (consent checks, grants, revocations) run in
    #: worker threads, at most this many at once per process; the others wait their turn. More threads
    #: only fight for the interpreter's lock once the process is busy (docs/performance.md).
    chain_threads: int = Field(default=40, ge=1, le=1000)
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    #: Largest batch upload accepted (``POST /api/v1/ingest/{table}``), in bytes.
    max_ingest_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    #: Default lifetime of a consent granted through the API, in days (capped by the registry's maximum).
    consent_days: int = Field(default=365, ge=1, le=390)
    #: Seconds an EIP-712 signature request stays valid.
    signature_ttl_s: int = Field(default=3600, ge=60)
    #: Deploy the contracts at start-up when the manifest is missing (local chains only).
    auto_deploy: bool = True
    #: Seed the demo world (partners, learners, profiles, an agreement) into an empty database.
    seed_demo: bool = False
    #: Run the settler and indexer threads (tests drive them by hand).
    background_workers: bool = True
    #: Seconds between a follower's tries to take the singleton workers' leadership, and between the
    #: leader's checks that it still holds it (PostgreSQL: processes sharing the database elect one).
    leader_poll_s: float = Field(default=1.0, gt=0, le=60)
    #: The A/B experiment's name: it seeds the learners' assignment (a new name reshuffles them) and
    #: tags the recommendations served under it.
    experiment_name: str = "ranker-v1"
    #: The experiment's arms and weights, e.g. ``hybrid=0.5,popularity=0.5`` (the first listed is the
    #: control); empty: no experiment, every request gets the hybrid model.
    experiment_arms: str = ""
    #: Seconds between checks of which model version the registry serves (a promotion made by another
    #: process or host is swapped in within this; 0: only at start-up).
    model_follow_interval_s: float = Field(default=1.0, ge=0)
    #: The quality gate: a candidate may replace the served model if its held-out ``promotion_metric`` is at
    #: least the served one's minus this (both scored on the candidate's held-out split).
    promotion_tolerance: float = Field(default=0.005, ge=0, le=1)
    promotion_metric: Literal["ndcg@10", "recall@10", "hr@10", "map@10"] = "ndcg@10"
    #: Where ``make bench-recommender`` writes its JSON and plot (relative to the working directory).
    reports_dir: Path = Path("reports")
    #: Seconds between rounds of the webhook deliverer (0: only when asked, e.g. in tests).
    webhook_interval_s: float = Field(default=0.5, ge=0)
    #: Seconds before the first retry of a failed webhook; each further retry waits twice as long (with
    #: jitter), up to six hours.
    webhook_retry_base_s: float = Field(default=10.0, gt=0, le=3600)
    #: Attempts before a webhook is dead (kept for the operator to replay); 15 span about a day.
    webhook_max_attempts: int = Field(default=15, ge=1, le=100)
    #: Seconds a partner's endpoint has to answer one delivery.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: Accept ``http://`` webhook endpoints (local development and tests); otherwise HTTPS only.
    webhook_allow_http: bool = False
    #: Accept webhook endpoints on loopback, private, link-local or other non-public addresses (local
    #: development and tests); otherwise such a URL is refused when registered, and a name that resolves
    #: to one is refused at delivery.
    webhook_allow_private: bool = False

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("expected sqlite:///path.db or postgresql+psycopg://user@host/db")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("experiment_name")
    @classmethod
    def _check_experiment_name(cls, value: str) -> str:
        if not _EXPERIMENT_NAME.fullmatch(value):
            raise ValueError("expected 1-21 letters, digits and _ . - (starting with a letter or digit)")
        return value

    @field_validator("experiment_arms")
    @classmethod
    def _check_experiment_arms(cls, value: str) -> str:
        parse_experiment_arms(value)
        return value.strip()

    @property
    def experiment(self) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """The running experiment's arms and weights (both empty when none runs)."""
        return parse_experiment_arms(self.experiment_arms)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'knowledger.db'}"

    @property
    def resolved_embedded_journal(self) -> Path:
        """Where the embedded chain is kept across restarts."""
        return self.embedded_journal or self.state_dir / "embedded-chain.journal"

    @property
    def exclusive_state(self) -> bool:
        """Whether the state directory holds what only one process may use: the embedded chain, or the
        default SQLite database."""
        return self.chain_target is ChainTarget.EMBEDDED or not self.database_url

    @property
    def resolved_model_path(self) -> Path:
        return self.model_path or self.state_dir / "model"


def describe_settings_error(exc: ValidationError) -> str:
    """One line per bad setting, naming the environment variable, e.g.
    ``KNOWLEDGER_DATABASE_URL: expected sqlite:///path.db or …``."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        lines.append(f"{ENV_PREFIX}{field.upper()}: {err.get('msg', 'invalid')} (got {err.get('input')!r})")
    return "bad setting: " + "; ".join(lines)


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (a FastAPI dependency; tests override it)."""
    return Settings()
