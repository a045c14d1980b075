"""The chain layer on a real anvil devnet: the whole flow, named reverts, time travel, node management."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backend.chain import ChainClient, ChainTarget, connect_devnet, connect_rpc, errors
from backend.chain.deploy import Deployment
from backend.chain.devnet import ANVIL_CHAIN_ID, AnvilNode, dev_wallets
from backend.chain.errors import ChainUnreachable, WrongChain
from backend.chain.types import (
    AgreementStatus,
    AgreementTerms,
    ConsentGrant,
    Conversion,
    ConversionData,
    Party,
    Purpose,
    split_commission,
)

pytestmark = pytest.mark.anvil
DAY = 86_400
REPO = Path(__file__).resolve().parents[2]


def test_grant_check_agree_record_totals(anvil_deployed: Deployment, anvil_clock: Any) -> None:
    d = anvil_deployed
    acc = d.accounts
    assert acc is not None
    assert d.client.target is ChainTarget.DEVNET and d.client.chain_id == ANVIL_CHAIN_ID
    now = anvil_clock.next_block()  # the grants' block (anvil's blocks otherwise follow the wall clock)
    # consent: the registrar grants two pseudonyms in one batch, the backend's gate reads the mask
    terms = d.consent.current_terms(acc.partner, Purpose.PRODUCT_RECOMMENDATION, now + 90 * DAY)
    subjects = [os.urandom(32), os.urandom(32)]
    result = d.consent.grant_batch([ConsentGrant(s, terms, os.urandom(32)) for s in subjects])
    assert len(result.events_named("ConsentGranted")) == 2
    assert d.consent.consent_mask(subjects[0], acc.partner) == Purpose.PRODUCT_RECOMMENDATION.bit
    assert d.consent.are_consented(subjects, acc.partner, Purpose.PRODUCT_RECOMMENDATION) == [True, True]
    # agreement: platform proposes, the partner and the creator accept
    agreement = AgreementTerms(
        parties=(Party(acc.platform, 500_000), Party(acc.partner, 300_000), Party(acc.creator, 200_000)),
        partner=acc.partner,
        reporter=acc.reporter,
        commission_rate=50_000,
        attribution_window=30 * DAY,
        validation_window=14 * DAY,
        valid_from=now - DAY,
        valid_until=now + 365 * DAY,
        currency="CNY",
    )
    aid = d.agreements.propose(agreement, sender=acc.platform).value
    d.agreements.accept(aid, agreement, sender=acc.partner)
    accepted = d.agreements.accept(aid, agreement, sender=acc.creator)
    assert "AgreementActivated" in [e.name for e in accepted.events]
    assert d.agreements.agreement_of(aid).status is AgreementStatus.ACTIVE
    # conversions: recorded by the reporter, split exactly as the mirror says
    t = d.client.now()
    conversions = [
        Conversion(ConversionData(i + 1, t, t - 3_600, v), os.urandom(32), s)
        for i, (v, s) in enumerate(zip((1_000_001, 2_999_999), subjects, strict=True))
    ]
    batch = d.ledger.record_conversions(aid, agreement, conversions)
    assert batch.value == 1 and d.ledger.batch_count() == 1
    for i, party in enumerate(agreement.parties):
        expected = sum(split_commission(agreement, c.data.value)[1][i] for c in conversions)
        assert d.ledger.totals_of(aid, party.account).provisional == expected
    # after the validation window anyone can finalize
    d.client.increase_time(15 * DAY)
    d.ledger.finalize_batch(batch.value, agreement, sender=acc.outsider)
    assert d.ledger.totals_of(aid, acc.platform).final > 0
    assert d.ledger.batch_of(batch.value).finalized


def test_named_reverts_on_anvil(anvil_deployed: Deployment) -> None:
    acc = anvil_deployed.accounts
    assert acc is not None
    with pytest.raises(errors.ConsentRegistryNotGranted) as info:
        anvil_deployed.consent.revoke(os.urandom(32), acc.partner, Purpose.PROFILING)
    assert "ConsentRegistry.revoke reverted with ConsentRegistryNotGranted" in str(info.value)
    with pytest.raises(errors.AccessControlUnauthorizedAccount):
        anvil_deployed.consent.set_platform_notice_version(2, sender=acc.outsider)
    # a mined failure (explicit gas skips the estimate) is replayed for its reason
    fn = anvil_deployed.consent.contract.fn("revoke", os.urandom(32), acc.partner, 0)
    with pytest.raises(errors.ConsentRegistryNotGranted):
        anvil_deployed.client.send(fn, sender=acc.registrar, gas=100_000)


def test_time_and_snapshots_on_anvil(anvil_chain: ChainClient) -> None:
    start = anvil_chain.now()
    assert anvil_chain.increase_time(7 * DAY) >= start + 7 * DAY
    snap = anvil_chain.snapshot()
    block = anvil_chain.block_number
    anvil_chain.mine(3)
    assert anvil_chain.block_number == block + 3
    anvil_chain.revert(snap)
    assert anvil_chain.block_number == block


def test_wrong_chain_id_on_anvil(anvil_node: AnvilNode) -> None:
    with pytest.raises(WrongChain) as info:
        connect_devnet(anvil_node.url, expected_chain_id=1)
    assert str(info.value) == "Connected to chain 31337, expected 1: is --rpc-url right?"
    with pytest.raises(WrongChain, match="KNOWLEDGER_RPC_URL"):
        connect_rpc(anvil_node.url, 1)


def test_rpc_target_signs_with_the_given_key(anvil_node: AnvilNode) -> None:
    key = dev_wallets(5)[4]
    client = connect_rpc(anvil_node.url, ANVIL_CHAIN_ID, "0x" + key.private_key.hex(), confirmations=1)
    assert [a.address for a in client.accounts] == [key.address]
    result = client.transact(dev_wallets(1)[0].address, b"", value=1)
    assert result.gas_used == 21_000


def test_node_lifecycle_and_unreachable_after_stop(anvil_bin: Path, tmp_path: Path) -> None:
    node = AnvilNode(run_dir=tmp_path, binary=anvil_bin)
    node.start()
    pid = node.pid
    assert pid is not None and (tmp_path / "anvil.pid").read_text().strip() == str(pid)
    client = connect_devnet(node)
    assert client.chain_id == ANVIL_CHAIN_ID and len(client.accounts) == 10
    node.stop()
    assert not node.is_running() and not (tmp_path / "anvil.pid").exists()
    assert not Path(f"/proc/{pid}").exists() or b"anvil" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    with pytest.raises(ChainUnreachable, match=f"cannot reach {node.url}"):
        client.block_number  # noqa: B018


def test_the_devnet_answers_for_old_blocks_like_an_archive_node(anvil_bin: Path, tmp_path: Path) -> None:
    """``knowledger audit`` reads consent at the block each answer names, however old: past anvil's default
    history (500 states in memory, 3,600 on disk) a call at an old block must still be answered."""
    sink = "0x000000000000000000000000000000000000dEaD"

    def rpc(node: AnvilNode, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert "error" not in answer, answer
        return answer["result"]

    def mined(node: AnvilNode, tx: str) -> dict[str, Any]:
        for _ in range(600):
            receipt = rpc(node, "eth_getTransactionReceipt", tx)
            if receipt is not None:
                return dict(receipt)
            time.sleep(0.05)
        raise AssertionError(f"{tx} was never mined")

    node = AnvilNode(run_dir=tmp_path, binary=anvil_bin).start()
    try:
        sender = dev_wallets(1)[0].address
        tx = rpc(node, "eth_sendTransaction", {"from": sender, "to": sink, "value": "0x1"})
        # anvil answers with the hash and mines just after: the block that holds it is the receipt's.
        early = int(mined(node, tx)["blockNumber"], 16)
        rpc(node, "anvil_mine", hex(5_000))
        mined(node, rpc(node, "eth_sendTransaction", {"from": sender, "to": sink, "value": "0x1"}))
        assert int(rpc(node, "eth_blockNumber"), 16) > early + 5_000
        assert int(rpc(node, "eth_getBalance", sink, hex(early)), 16) == 1
        assert int(rpc(node, "eth_getBalance", sink, "latest"), 16) == 2
    finally:
        node.stop()


def test_detached_start_and_stop_scripts(anvil_bin: Path, tmp_path: Path) -> None:
    env = {**os.environ, "KNOWLEDGER_DEVNET_RUN_DIR": str(tmp_path), "KNOWLEDGER_DEVNET_PORT": "0"}
    start = subprocess.run(
        ["bash", str(REPO / "hardhat-free-devnet" / "start.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert start.returncode == 0, start.stderr
    assert "chain id 31337" in start.stdout
    pid = int((tmp_path / "anvil.pid").read_text())
    assert Path(f"/proc/{pid}").exists()
    again = subprocess.run(
        ["bash", str(REPO / "hardhat-free-devnet" / "start.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode != 0 and "already running" in again.stderr
    stop = subprocess.run(
        ["bash", str(REPO / "hardhat-free-devnet" / "stop.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stop.returncode == 0, stop.stderr
    assert not (tmp_path / "anvil.pid").exists()
    assert sys.platform != "linux" or not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split()[2] != "Z"


def test_a_read_at_a_block_the_node_no_longer_holds_says_so() -> None:
    """Not a revert: the error names the block and says an archive node is needed."""
    from backend.chain.rpc import is_missing_state

    assert is_missing_state({"code": -32602, "message": "BlockOutOfRangeError: height 9, requested 2"})
    assert is_missing_state("missing trie node 5d3f… (path )")
    assert not is_missing_state({"code": 3, "message": "execution reverted", "data": "0x08c379a0"})
