"""Connection targets and the failures a user can fix: unreachable node, wrong chain, missing key, no "
"funds."""

from __future__ import annotations

import json
import socket

import pytest
from eth_account import Account

from backend.chain import ChainClient, ChainTarget, connect, connect_devnet, connect_rpc, errors, load_key
from backend.chain.deploy import Deployment, check_funds
from backend.chain.errors import ChainUnreachable, InsufficientFunds, MissingKey, WrongChain
from backend.chain.settings import ChainSettings
from backend.chain.types import Purpose, Wallet


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_embedded_chain_basics(fresh_chain: ChainClient) -> None:
    chain = fresh_chain
    assert chain.target is ChainTarget.EMBEDDED
    assert len(chain.accounts) == 10 and all(isinstance(a, Wallet) for a in chain.accounts)
    assert chain.balance(chain.accounts[0]) > 10**21
    start = chain.now()
    assert chain.increase_time(3_600) >= start + 3_600
    before = chain.block_number
    chain.mine(2)
    assert chain.block_number == before + 2


def test_snapshot_revert_restores_state_and_nonces(deployed: Deployment) -> None:
    chain, acc = deployed.client, deployed.accounts
    assert acc is not None
    snap = chain.snapshot()
    deployed.consent.set_partner_notice_version(acc.partner, 2)
    assert deployed.consent.partner_notice_version(acc.partner) == 2
    chain.revert(snap)
    assert deployed.consent.partner_notice_version(acc.partner) == 1
    # the local nonce cache was reset: the next transaction goes through
    deployed.consent.set_partner_notice_version(acc.partner, 3)
    assert deployed.consent.partner_notice_version(acc.partner) == 3


def test_unreachable_node_is_its_own_error() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ChainUnreachable) as info:
        connect_rpc(url, 31337)
    assert str(info.value).startswith(
        f"cannot reach {url}: is the node running? is KNOWLEDGER_RPC_URL right?"
    )
    with pytest.raises(ChainUnreachable, match="--rpc-url"):
        connect_devnet(url)
    with pytest.raises(ChainUnreachable, match="http"):
        connect_rpc("localhost:8545", 1)


def test_connect_follows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWLEDGER_CHAIN_TARGET", "embedded")
    assert connect(ChainSettings()).target is ChainTarget.EMBEDDED
    monkeypatch.setenv("KNOWLEDGER_CHAIN_TARGET", "rpc")
    monkeypatch.setenv("KNOWLEDGER_RPC_URL", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ChainUnreachable):
        connect(ChainSettings())


def test_missing_key(deployed: Deployment) -> None:
    with pytest.raises(MissingKey, match="KNOWLEDGER_PRIVATE_KEY"):
        load_key(None, None, None)
    with pytest.raises(MissingKey, match="valid private key"):
        load_key("0x1234")
    stranger = Account.create().address
    with pytest.raises(MissingKey, match=stranger):
        deployed.consent.set_platform_notice_version(2, sender=stranger)


def test_keystore_round_trip(tmp_path: pytest.TempPathFactory) -> None:
    key = b"\x42" * 32
    keystore = Account.encrypt(key, "correct horse", kdf="pbkdf2", iterations=2)
    path = tmp_path / "key.json"  # type: ignore[operator]
    path.write_text(json.dumps(keystore))
    assert load_key(keystore=path, keystore_password="correct horse").private_key == key
    with pytest.raises(MissingKey, match="KNOWLEDGER_KEYSTORE_PASSWORD"):
        load_key(keystore=path, keystore_password="wrong")
    with pytest.raises(MissingKey, match="KNOWLEDGER_KEYSTORE_PASSWORD"):
        load_key(keystore=path)
    with pytest.raises(MissingKey, match="not found"):
        load_key(keystore=path.with_name("missing.json"), keystore_password="x")


def test_insufficient_funds_before_sending(deployed: Deployment) -> None:
    chain, acc = deployed.client, deployed.accounts
    assert acc is not None
    poor = chain.add_signer(Wallet(b"\x77" * 32))
    with pytest.raises(InsufficientFunds) as info:
        check_funds(chain, poor, poor, sender=poor)
    assert poor.address in str(info.value) and "fund this account" in str(info.value)
    # a transaction from an unfunded account is refused by the node with the same named error
    with pytest.raises(InsufficientFunds):
        chain.transact(acc.outsider, b"", sender=poor, value=1)


def test_wrong_chain_message() -> None:
    exc = WrongChain(1, 31337)
    assert str(exc) == "Connected to chain 1, expected 31337: is KNOWLEDGER_RPC_URL right?"


def test_sends_are_sequenced_by_local_nonces(deployed: Deployment) -> None:
    acc = deployed.accounts
    assert acc is not None
    nonces = set()
    for version in range(2, 7):
        result = deployed.consent.set_partner_notice_version(acc.partner, version)
        nonces.add(result.tx_hash)
    assert len(nonces) == 5
    assert deployed.consent.partner_notice_version(acc.partner) == 6
    assert deployed.consent.consent_mask(b"\x01" * 32, acc.partner) == 0
    assert not deployed.consent.is_consented(b"\x01" * 32, acc.partner, Purpose.PROFILING)


def test_unknown_function_name_is_an_attribute_error(deployed: Deployment) -> None:
    with pytest.raises(AttributeError, match="no function"):
        deployed.consent.contract.fn("noSuchFunction")
    assert issubclass(errors.ConsentRegistryInvalidNonce, errors.ContractReverted)


def test_head_is_the_latest_block(fresh_chain: ChainClient) -> None:
    """The in-process fast path answers exactly what eth_getBlockByNumber("latest") says."""
    fresh_chain.mine(2)
    fresh_chain.increase_time(3600)
    head = fresh_chain.head()
    latest = fresh_chain.w3.eth.get_block("latest")
    assert (head.number, head.hash, head.timestamp) == (
        latest["number"],
        "0x" + bytes(latest["hash"]).hex(),
        latest["timestamp"],
    )


def test_send_and_call_take_a_web3_contract_function(deployed: Deployment) -> None:
    acc = deployed.accounts
    assert acc is not None
    chain = deployed.client
    registry = chain.w3.eth.contract(address=deployed.consent.address, abi=chain.abi_of("ConsentRegistry"))
    result = chain.send(registry.functions.setPartnerNoticeVersion(acc.partner, 4), sender=acc.admin)
    assert result.event("PartnerNoticeVersionChanged")["current"] == 4
    raw = chain.call(registry.functions.partnerNoticeVersion(acc.partner))
    assert int.from_bytes(raw, "big") == 4  # a web3 function's output comes back undecoded
    with pytest.raises(errors.AccessControlUnauthorizedAccount):
        chain.send(registry.functions.setPartnerNoticeVersion(acc.partner, 5), sender=acc.outsider)
    with pytest.raises(TypeError, match="FunctionCall"):
        chain.send(object())


def test_test_time_controls_refuse_a_real_network(fresh_chain: ChainClient) -> None:
    rpc = ChainClient(fresh_chain.w3, ChainTarget.RPC)
    for control in (lambda: rpc.increase_time(1), rpc.mine, rpc.snapshot, lambda: rpc.revert(0)):
        with pytest.raises(errors.ChainError, match="not a real network"):
            control()
