"""Service settings (pydantic-settings, ``KNOWLEDGER_*`` environment variables or a ``.env`` file).

Served by the cached dependency :func:`get_settings`; tests build their own ``Settings`` and override it.
A bad value stops start-up with :func:`describe_settings_error`, a message that names the variable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from backend.chain import ChainSettings

ENV_PREFIX = "KNOWLEDGER_"


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
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
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

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("expected sqlite:///path.db or postgresql+psycopg://user@host/db")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'knowledger.db'}"

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
