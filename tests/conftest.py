"""Shared chain fixtures and the tests' control of the chain's clock.

- ``embedded_chain``: one in-process eth-tester chain for the session (``ChainClient``), its clock pinned
  (``pin_clock``).
- ``fresh_chain``: a new, empty eth-tester chain for a test that needs one of its own, its clock pinned too.
- ``deployed``: the three contracts on ``embedded_chain``, with named accounts (``deployed.accounts.admin``,
  ``registrar``, ``reporter``, ``platform``, ``partner``, ``creator``, ``outsider``: ``Wallet`` objects, i.e.
  addresses carrying their private keys) and the partner's notice version registered (1). Each test runs
  between a snapshot and a revert, so every test starts from the same clean deployment.
- ``anvil_bin`` / ``anvil_node`` / ``anvil_chain`` / ``anvil_deployed``: the same on a real anvil devnet
  (tests marked ``@pytest.mark.anvil``). Without the anvil binary they skip, unless
  ``KNOWLEDGER_REQUIRE_ANVIL=1`` (CI), in which case they fail.

Time: no test may depend on how fast the machine runs, so none compares a chain time with the wall clock.
eth-tester stamps a new block with ``max(parent's timestamp + 1, wall clock)``: behind the wall clock (after a
snapshot revert, or on a loaded machine), the next block's time is whatever the wall clock says, not what a
test read from ``now()``. ``pin_clock`` therefore starts the embedded chains at ``CHAIN_EPOCH``, far ahead of
any wall clock, where every block is exactly one second after its parent and time moves only when a test
moves it (``increase_time``). ``Clock`` (fixtures ``clock`` and ``anvil_clock``) fixes the timestamp of the
next block exactly, on eth-tester and on anvil (whose blocks otherwise follow the wall clock): tests derive
expiries and deadlines from the block their transaction will be mined in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from backend.chain import ChainClient, ChainTarget, connect_devnet, connect_embedded
from backend.chain.deploy import Deployment, NamedAccounts, deploy_all
from backend.chain.devnet import AnvilNode, AnvilUnavailable, anvil_binary
from backend.chain.errors import ChainError

# Hypothesis judges examples by what they find, never by how long they take: its default 200 ms deadline and
# its "too slow" health check fail on a loaded machine (a first example that waits for a busy CPU), which
# would make the suite's outcome depend on the machine's speed.
settings.register_profile(
    "knowledger", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors]
)
settings.load_profile("knowledger")

#: Where the embedded chains' clock starts: 2200-01-01T00:00:00Z, ahead of any wall clock this code will see.
CHAIN_EPOCH = 7_258_118_400


def pin_clock(client: ChainClient) -> ChainClient:
    """Move an embedded chain's clock to ``CHAIN_EPOCH``. From there eth-tester stamps every block exactly
    one second after its parent (the wall clock is always behind), so block times depend only on the blocks
    a test mines and the time it moves, never on the machine's speed."""
    client.increase_time(CHAIN_EPOCH - client.now())
    return client


class Clock:
    """Exact control of a test chain's clock, on eth-tester and on anvil (the ``clock`` and ``anvil_clock``
    fixtures)."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client

    def now(self) -> int:
        """The latest block's timestamp."""
        return self.client.now()

    def set_next_block(self, timestamp: int) -> int:
        """Stamp the next block (the next transaction's, or ``mine``'s) with exactly ``timestamp``, which must
        be later than the latest block's; returns it. On eth-tester the pending block's header gets the
        timestamp (as eth-tester's own ``time_travel`` does before it mines); on anvil it is
        ``evm_setNextBlockTimestamp``."""
        latest = self.now()
        if timestamp <= latest:
            raise ValueError(f"the next block must be later than the latest one ({latest}), got {timestamp}")
        if self.client.target is ChainTarget.EMBEDDED:
            chain = self.client.w3.provider.ethereum_tester.backend.chain  # type: ignore[attr-defined]
            chain.header = chain.header.copy(timestamp=timestamp)
        else:
            response = self.client.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
            if "error" in response:
                raise ChainError(f"evm_setNextBlockTimestamp({timestamp}) failed: {response['error']}")
        return timestamp

    def next_block(self) -> int:
        """The timestamp of the block the next transaction will be mined in, pinned to one second after the
        latest block: derive a transaction's expiries and deadlines from it, not from ``now()``."""
        return self.set_next_block(self.now() + 1)

    def travel_to(self, timestamp: int) -> int:
        """Mine a block stamped exactly ``timestamp`` (later than the latest block); returns it."""
        self.set_next_block(timestamp)
        self.client.mine()
        return timestamp


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
    return pin_clock(connect_embedded())


@pytest.fixture
def fresh_chain() -> ChainClient:
    return pin_clock(connect_embedded())


@pytest.fixture(scope="session")
def _embedded_deployment(embedded_chain: ChainClient) -> Deployment:
    return _deploy_with_roles(embedded_chain)


@pytest.fixture
def deployed(_embedded_deployment: Deployment) -> Iterator[Deployment]:
    yield from _isolated(_embedded_deployment)


@pytest.fixture
def clock(deployed: Deployment) -> Clock:
    """The clock of ``deployed``'s chain."""
    return Clock(deployed.client)


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


@pytest.fixture
def anvil_clock(anvil_deployed: Deployment) -> Clock:
    """The clock of ``anvil_deployed``'s chain."""
    return Clock(anvil_deployed.client)
