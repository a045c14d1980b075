"""Connecting to the three chain targets, and loading the signing key.

- ``embedded``: an in-process eth-tester chain (``embedded.EmbeddedChain``), the default for tests and the
  demo. Its ten funded accounts are eth-tester's deterministic ones.
- ``devnet``: a local anvil node (``AnvilNode`` or its URL), chain id 31337, the test mnemonic's accounts.
- ``rpc``: any JSON-RPC URL, with the key from the environment or an encrypted keystore.

``connect(settings)`` picks one from ``ChainSettings`` (the ``KNOWLEDGER_*`` environment variables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from web3 import Web3

from .client import ChainClient
from .constants import ChainTarget
from .devnet import ANVIL_CHAIN_ID, AnvilNode, dev_wallets
from .embedded import EmbeddedChain
from .exceptions import ChainUnreachable, MissingKey
from .settings import ChainSettings
from .types import Wallet


def connect_embedded(journal: Path | None = None) -> ChainClient:
    """An in-process eth-tester chain with ten funded, deterministic accounts: fresh in memory, or kept in
    ``journal`` (a new file starts a chain, an existing one reopens it; ``client.embedded.reopened`` says
    which)."""
    chain = EmbeddedChain(journal)
    return ChainClient(chain.w3, ChainTarget.EMBEDDED, signers=chain.wallets(), embedded=chain)


def _http_web3(url: str, *, trust_env: bool, timeout: float, poa: bool) -> Web3:
    """``Web3`` over one keep-alive ``requests`` session (closed by ``ChainClient.close``), without web3's
    retries (a failure is reported at once as ``ChainUnreachable``)."""
    session = requests.Session()
    session.trust_env = trust_env  # a loopback devnet needs no proxy lookup per request
    provider = Web3.HTTPProvider(
        url, request_kwargs={"timeout": timeout}, session=session, exception_retry_configuration=None
    )
    middleware: list[Any] = []
    if poa:
        from web3.middleware import ExtraDataToPOAMiddleware

        middleware.append(ExtraDataToPOAMiddleware)
    w3 = Web3(provider, middleware=middleware)
    w3._knowledger_session = session  # type: ignore[attr-defined]  # closed by ChainClient.close
    return w3


def _check_url(url: str, option: str) -> str:
    if not url or not url.startswith(("http://", "https://")):
        raise ChainUnreachable(url or "(empty URL)", "expected an http:// or https:// URL", option=option)
    return url


def connect_devnet(
    url_or_node: str | AnvilNode = "http://127.0.0.1:8545",
    *,
    expected_chain_id: int | None = None,
    url_option: str = "--rpc-url",
    timeout: float = 30.0,
) -> ChainClient:
    """A local anvil devnet (a running URL or an ``AnvilNode``), signing with the test mnemonic's accounts."""
    node = url_or_node if isinstance(url_or_node, AnvilNode) else None
    url = node.url if node is not None else _check_url(str(url_or_node), url_option)
    w3 = _http_web3(url, trust_env=False, timeout=timeout, poa=False)
    wallets = node.wallets() if node is not None else dev_wallets()
    return ChainClient(
        w3,
        ChainTarget.DEVNET,
        signers=wallets,
        url=url,
        expected_chain_id=expected_chain_id if expected_chain_id is not None else ANVIL_CHAIN_ID,
        node=node,
        url_option=url_option,
    )


def load_key(
    private_key: str | bytes | None = None,
    keystore: Path | str | None = None,
    keystore_password: str | None = None,
) -> Wallet:
    """The signing key: a raw private key, or an encrypted keystore (``Account.decrypt``)."""
    if private_key:
        try:
            return Wallet(private_key)
        except Exception:
            raise MissingKey("KNOWLEDGER_PRIVATE_KEY is not a valid private key (64 hex digits)") from None
    if keystore:
        path = Path(keystore)
        if not path.is_file():
            raise MissingKey(f"keystore {path} not found: check --keystore", option="--keystore")
        if keystore_password is None:
            raise MissingKey(
                f"keystore {path} needs its password in KNOWLEDGER_KEYSTORE_PASSWORD",
                option="KNOWLEDGER_KEYSTORE_PASSWORD",
            )
        try:
            key = Account.decrypt(path.read_text(encoding="utf-8"), keystore_password)
        except ValueError as exc:
            raise MissingKey(
                f"cannot decrypt keystore {path}: {exc} (is KNOWLEDGER_KEYSTORE_PASSWORD right?)",
                option="KNOWLEDGER_KEYSTORE_PASSWORD",
            ) from None
        return Wallet(bytes(key))
    raise MissingKey()


def connect_rpc(
    url: str,
    expected_chain_id: int | None = None,
    private_key: str | bytes | None = None,
    *,
    keystore: Path | str | None = None,
    keystore_password: str | None = None,
    confirmations: int = 1,
    url_option: str = "KNOWLEDGER_RPC_URL",
    require_key: bool = False,
    timeout: float = 60.0,
) -> ChainClient:
    """Any JSON-RPC node. ``expected_chain_id`` guards against pointing at the wrong network."""
    url = _check_url(url, url_option)
    signers: list[Wallet] = []
    if private_key or keystore or require_key:
        signers.append(load_key(private_key, keystore, keystore_password))
    w3 = _http_web3(url, trust_env=True, timeout=timeout, poa=True)
    return ChainClient(
        w3,
        ChainTarget.RPC,
        signers=signers,
        url=url,
        expected_chain_id=expected_chain_id,
        confirmations=confirmations,
        url_option=url_option,
    )


def connect(settings: ChainSettings | None = None) -> ChainClient:
    """Connect as configured by ``ChainSettings`` (``KNOWLEDGER_*`` environment variables)."""
    s = settings or ChainSettings()
    if s.chain_target is ChainTarget.EMBEDDED:
        return connect_embedded(s.embedded_journal)
    if s.chain_target is ChainTarget.DEVNET:
        return connect_devnet(
            s.rpc_url, expected_chain_id=s.chain_id, url_option="KNOWLEDGER_RPC_URL", timeout=s.rpc_timeout_s
        )
    key = s.private_key.get_secret_value() if s.private_key is not None else None
    password = s.keystore_password.get_secret_value() if s.keystore_password is not None else None
    return connect_rpc(
        s.rpc_url,
        s.chain_id,
        key,
        keystore=s.keystore_path,
        keystore_password=password,
        confirmations=s.confirmations,
        timeout=s.rpc_timeout_s,
    )
