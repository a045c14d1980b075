"""Chain settings from the environment (``KNOWLEDGER_*``), shared by the CLI and the API service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .constants import ChainTarget


class ChainSettings(BaseSettings):
    """Where the chain is and how to sign.

    - ``KNOWLEDGER_CHAIN_TARGET``: ``embedded`` (in-process eth-tester, default), ``devnet`` (anvil) or
      ``rpc``.
    - ``KNOWLEDGER_RPC_URL``: the node for ``devnet``/``rpc``.
    - ``KNOWLEDGER_CHAIN_ID``: the chain id the node must report (a guard against the wrong network).
    - ``KNOWLEDGER_PRIVATE_KEY`` or ``KNOWLEDGER_KEYSTORE_PATH`` + ``KNOWLEDGER_KEYSTORE_PASSWORD``: the key.
    - ``KNOWLEDGER_MANIFEST_PATH``: the deployment manifest to write or load.
    - ``KNOWLEDGER_CONFIRMATIONS``: blocks to wait for on a real network.
    - ``KNOWLEDGER_RPC_TIMEOUT_S``: seconds to wait for a node's answer before it counts as unreachable.
    - ``KNOWLEDGER_EMBEDDED_JOURNAL``: the file that keeps the embedded chain across restarts (unset: the
      chain lives in memory; the service defaults it to ``<state dir>/embedded-chain.journal``).
    """

    model_config = SettingsConfigDict(env_prefix="KNOWLEDGER_", extra="ignore")

    chain_target: ChainTarget = ChainTarget.EMBEDDED
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int | None = None
    private_key: SecretStr | None = None
    keystore_path: Path | None = None
    keystore_password: SecretStr | None = None
    manifest_path: Path | None = None
    confirmations: int = Field(default=1, ge=0)
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    embedded_journal: Path | None = None

    def default_manifest_path(self, chain_id: int | None = None) -> Path:
        """``KNOWLEDGER_MANIFEST_PATH``, else ``deployments/local-<target>.json`` for local chains (not
        committed) and ``deployments/chain-<id>.json`` for a real network."""
        if self.manifest_path is not None:
            return self.manifest_path
        if self.chain_target is ChainTarget.RPC and chain_id is not None:
            return Path("deployments") / f"chain-{chain_id}.json"
        return Path("deployments") / f"local-{self.chain_target.value}.json"
