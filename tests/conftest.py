"""Shared chain fixtures.

- ``embedded_chain``: one in-process eth-tester chain for the session (``ChainClient``).
- ``fresh_chain``: a new, empty eth-tester chain for a test that needs one of its own.
- ``deployed``: the three contracts on ``embedded_chain``, with named accounts (``deployed.accounts.admin``,
  ``registrar``, ``reporter``, ``platform``, ``partner``, ``creator``, ``outsider``: ``Wallet`` objects, i.e.
  addresses carrying their private keys) and the partner's notice version registered (1). Each test runs
  between a snapshot and a revert, so every test starts from the same clean deployment.
- ``anvil_bin`` / ``anvil_node`` / ``anvil_chain`` / ``anvil_deployed``: the same on a real anvil devnet
  (tests marked ``@pytest.mark.anvil``). Without the anvil binary they skip, unless
  ``KNOWLEDGER_REQUIRE_ANVIL=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.chain import ChainClient, connect_devnet, connect_embedded
from backend.chain.deploy import Deployment, NamedAccounts, deploy_all
from backend.chain.devnet import AnvilNode, AnvilUnavailable, anvil_binary


def _deploy_with_roles(client: ChainClient) -> Deployment:
    accounts = NamedAccounts.from_wallets(client.accounts)
    deployment = deploy_all(client, admin=accounts.admin, registrar=accounts.registrar, sender=accounts.admin)
    deployment.consent.set_partner_notice_version(accounts.partner, 1, sender=accounts.admin)
    deployment.accounts = accounts
    return deployment


def _isolated(deployment: Deployment) -> Iterator[Deployment]:
    client = deployment.client
    snapshot = client.snapshot()
    try:
        yield deployment
    finally:
        client.revert(snapshot)


# ------------------------------------------------------------------------------------------- embedded


@pytest.fixture(scope="session")
def embedded_chain() -> ChainClient:
    return connect_embedded()


@pytest.fixture
def fresh_chain() -> ChainClient:
    return connect_embedded()


@pytest.fixture(scope="session")
def _embedded_deployment(embedded_chain: ChainClient) -> Deployment:
    return _deploy_with_roles(embedded_chain)


@pytest.fixture
def deployed(_embedded_deployment: Deployment) -> Iterator[Deployment]:
    yield from _isolated(_embedded_deployment)


# ---------------------------------------------------------------------------------------------- anvil


def _anvil_required() -> bool:
    return os.environ.get("KNOWLEDGER_REQUIRE_ANVIL", "") not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def anvil_bin() -> Path:
    """The anvil binary; skips the test without it (fails instead under ``KNOWLEDGER_REQUIRE_ANVIL=1``)."""
    try:
        return anvil_binary()
    except AnvilUnavailable as exc:
        if _anvil_required():
            pytest.fail(f"KNOWLEDGER_REQUIRE_ANVIL=1 but {exc}")
        pytest.skip(f"anvil tests skipped: {exc}")


@pytest.fixture(scope="session")
def anvil_node(anvil_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    node = AnvilNode(run_dir=tmp_path_factory.mktemp("anvil"), binary=anvil_bin)
    try:
        node.start()
    except AnvilUnavailable as exc:
        pytest.fail(f"anvil did not start: {exc}")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def anvil_chain(anvil_node: AnvilNode) -> Iterator[ChainClient]:
    client = connect_devnet(anvil_node)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def _anvil_deployment(anvil_chain: ChainClient) -> Deployment:
    return _deploy_with_roles(anvil_chain)


@pytest.fixture
def anvil_deployed(_anvil_deployment: Deployment) -> Iterator[Deployment]:
    yield from _isolated(_anvil_deployment)
