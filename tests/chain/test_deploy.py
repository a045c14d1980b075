"""Deployment, manifests, and the ``knowledger deploy`` / ``devnet`` commands on all three targets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.chain import ChainClient, connect_embedded
from backend.chain.deploy import Deployment, Manifest, deploy_all, load_deployment
from backend.chain.devnet import AnvilNode, dev_wallets
from backend.chain.errors import DeploymentNotFound, WrongChain
from backend.chain.types import Wallet
from backend.cli import app

ENV_VARS = (
    "KNOWLEDGER_CHAIN_TARGET",
    "KNOWLEDGER_RPC_URL",
    "KNOWLEDGER_CHAIN_ID",
    "KNOWLEDGER_PRIVATE_KEY",
    "KNOWLEDGER_KEYSTORE_PATH",
    "KNOWLEDGER_KEYSTORE_PASSWORD",
    "KNOWLEDGER_MANIFEST_PATH",
    "KNOWLEDGER_CONFIRMATIONS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _one_line_error(result: object, *needles: str) -> str:
    exit_code = result.exit_code  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert exit_code == 2, (exit_code, result.output)  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) >= 1 and lines[-1].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return str(lines[-1])


# ----------------------------------------------------------------------------------------- library


def test_manifest_records_the_deployment_and_round_trips(tmp_path: Path) -> None:
    chain = connect_embedded()
    d = deploy_all(chain)
    m = d.manifest
    assert m.chain_id == chain.chain_id and m.target == "embedded"
    assert m.deployer == chain.accounts[0].address == m.admin == m.registrar
    assert set(m.contracts) == {"ConsentRegistry", "PartnershipAgreements", "SettlementLedger"}
    assert [r.block_number for r in m.contracts.values()] == sorted(
        r.block_number for r in m.contracts.values()
    )
    assert all(r.tx_hash.startswith("0x") and len(r.tx_hash) == 66 for r in m.contracts.values())
    assert m.input_hash.startswith("0x")
    path = m.write(tmp_path / "deployments" / "m.json")
    assert Manifest.load(path) == m
    again = load_deployment(chain, path)
    assert again.consent.address == d.consent.address
    assert again.ledger.registry() == d.consent.address
    assert again.ledger.agreements() == d.agreements.address


def test_load_deployment_checks_chain_and_code(tmp_path: Path, deployed: Deployment) -> None:
    path = deployed.manifest.write(tmp_path / "m.json")
    other = connect_embedded()  # same chain id, empty chain: no code at the addresses
    with pytest.raises(DeploymentNotFound, match="no contract code"):
        load_deployment(other, path)
    data = json.loads(path.read_text())
    data["chain_id"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(WrongChain, match="Connected to chain"):
        load_deployment(deployed.client, path)
    with pytest.raises(DeploymentNotFound, match="knowledger deploy"):
        Manifest.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"chain_id": 1}')
    with pytest.raises(DeploymentNotFound, match="malformed"):
        Manifest.load(tmp_path / "bad.json")


def test_deployment_uses_admin_and_registrar(fresh_chain: ChainClient) -> None:
    admin, registrar = fresh_chain.accounts[1], fresh_chain.accounts[2]
    d = deploy_all(fresh_chain, admin=admin, registrar=registrar, max_consent_duration=30 * 86_400)
    assert d.consent.registrar() == registrar.address
    assert d.consent.has_role(d.consent.notice_admin_role(), admin)
    assert not d.consent.has_role(d.consent.notice_admin_role(), fresh_chain.accounts[0])
    assert d.consent.max_consent_duration() == 30 * 86_400
    assert d.consent.platform_notice_version() == 1


# --------------------------------------------------------------------------------------------- CLI


def test_cli_deploy_embedded_prints_the_manifest(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "embedded.json"
    result = runner.invoke(app, ["deploy", "--target", "embedded", "--manifest", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert Manifest.from_dict(printed).target == "embedded"


def test_cli_missing_key_for_rpc(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["deploy", "--target", "rpc", "--rpc-url", _closed_url(), "--chain-id", "31337"]
    )
    _one_line_error(result, "KNOWLEDGER_PRIVATE_KEY")


def test_cli_rpc_needs_url_and_chain_id(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWLEDGER_PRIVATE_KEY", "0x" + "11" * 32)
    _one_line_error(
        runner.invoke(app, ["deploy", "--target", "rpc", "--chain-id", "5"]),
        "--rpc-url",
        "KNOWLEDGER_RPC_URL",
    )
    _one_line_error(
        runner.invoke(app, ["deploy", "--target", "rpc", "--rpc-url", _closed_url()]), "--chain-id"
    )


def test_cli_unreachable_node(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _closed_url()
    monkeypatch.setenv("KNOWLEDGER_PRIVATE_KEY", "0x" + "11" * 32)
    monkeypatch.setenv("KNOWLEDGER_RPC_URL", url)
    line = _one_line_error(runner.invoke(app, ["deploy", "--target", "rpc", "--chain-id", "31337"]))
    assert line == f"error: cannot reach {url}: is the node running? is KNOWLEDGER_RPC_URL right?"
    _one_line_error(runner.invoke(app, ["deploy", "--target", "devnet", "--rpc-url", url]), "--rpc-url")


def test_cli_bad_settings_name_the_variable(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWLEDGER_CHAIN_ID", "mainnet")
    _one_line_error(runner.invoke(app, ["deploy"]), "KNOWLEDGER_CHAIN_ID")
    monkeypatch.delenv("KNOWLEDGER_CHAIN_ID")
    monkeypatch.setenv("KNOWLEDGER_PRIVATE_KEY", "nonsense")
    _one_line_error(
        runner.invoke(app, ["deploy", "--target", "rpc", "--rpc-url", _closed_url(), "--chain-id", "1"]),
        "KNOWLEDGER_PRIVATE_KEY",
    )


def test_cli_devnet_check_unreachable(runner: CliRunner) -> None:
    url = _closed_url()
    _one_line_error(runner.invoke(app, ["devnet", "--check", "--rpc-url", url]), f"cannot reach {url}")


# ----------------------------------------------------------------------------------- CLI on anvil


@pytest.fixture(scope="module")
def cli_node(anvil_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """A devnet of the CLI tests' own (the deploys here would disturb the shared anvil fixture's nonces)."""
    with AnvilNode(run_dir=tmp_path_factory.mktemp("cli-anvil"), binary=anvil_bin) as node:
        yield node


@pytest.mark.anvil
def test_cli_deploy_devnet(runner: CliRunner, cli_node: AnvilNode, tmp_path: Path) -> None:
    out = tmp_path / "devnet.json"
    result = runner.invoke(
        app, ["deploy", "--target", "devnet", "--rpc-url", cli_node.url, "--manifest", str(out)]
    )
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(out)
    assert manifest.chain_id == 31337 and manifest.target == "devnet"
    assert manifest.deployer == dev_wallets(1)[0].address
    assert json.loads(result.stdout)["contracts"] == json.loads(out.read_text())["contracts"]


@pytest.mark.anvil
def test_cli_deploy_rpc_with_key_from_env(
    runner: CliRunner, cli_node: AnvilNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployer = dev_wallets(3)[2]
    monkeypatch.setenv("KNOWLEDGER_PRIVATE_KEY", "0x" + deployer.private_key.hex())
    monkeypatch.setenv("KNOWLEDGER_CONFIRMATIONS", "1")
    out = tmp_path / "rpc.json"
    result = runner.invoke(
        app,
        [
            "deploy",
            "--target",
            "rpc",
            "--rpc-url",
            cli_node.url,
            "--chain-id",
            "31337",
            "--manifest",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(out)
    assert manifest.target == "rpc" and manifest.deployer == deployer.address


@pytest.mark.anvil
def test_cli_wrong_chain_id(runner: CliRunner, cli_node: AnvilNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWLEDGER_PRIVATE_KEY", "0x" + dev_wallets(1)[0].private_key.hex())
    monkeypatch.setenv("KNOWLEDGER_RPC_URL", cli_node.url)
    line = _one_line_error(runner.invoke(app, ["deploy", "--target", "rpc", "--chain-id", "1"]))
    assert line == "error: Connected to chain 31337, expected 1: is KNOWLEDGER_RPC_URL right?"


@pytest.mark.anvil
def test_cli_insufficient_funds_before_sending(
    runner: CliRunner, cli_node: AnvilNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    poor = Wallet(b"\x5a" * 32)
    monkeypatch.setenv("KNOWLEDGER_PRIVATE_KEY", "0x" + poor.private_key.hex())
    before = int(json.loads(json.dumps(_nonce(cli_node.url, poor.address))))
    line = _one_line_error(
        runner.invoke(app, ["deploy", "--target", "rpc", "--rpc-url", cli_node.url, "--chain-id", "31337"]),
        poor.address,
        "needs about",
    )
    assert "fund this account" in line
    assert _nonce(cli_node.url, poor.address) == before == 0, "nothing was sent"


@pytest.mark.anvil
def test_cli_devnet_start_check_and_check(runner: CliRunner, cli_node: AnvilNode, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["devnet", "start", "--check", "--port", "0", "--run-dir", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["chainId"] == 31337 and info["fundedAccounts"] == 10
    assert not (tmp_path / "run" / "anvil.pid").exists(), "the node was stopped and its PID file removed"
    result = runner.invoke(app, ["devnet", "--check", "--rpc-url", cli_node.url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["url"] == cli_node.url


def _nonce(url: str, address: str) -> int:
    from backend.chain.devnet import rpc_request

    return int(rpc_request(url, "eth_getTransactionCount", [address, "latest"]), 16)


def _keystore(tmp_path: Path, wallet: Wallet, password: str) -> Path:
    from eth_account import Account

    path = tmp_path / "deployer.json"
    path.write_text(json.dumps(Account.encrypt(wallet.private_key, password, kdf="pbkdf2", iterations=2)))
    return path


def test_cli_keystore_with_a_wrong_password(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _keystore(tmp_path, Wallet(b"\x21" * 32), "right")
    monkeypatch.setenv("KNOWLEDGER_KEYSTORE_PASSWORD", "wrong")
    args = [
        "deploy",
        "--target",
        "rpc",
        "--rpc-url",
        _closed_url(),
        "--chain-id",
        "1",
        "--keystore",
        str(path),
    ]
    _one_line_error(runner.invoke(app, args), "KNOWLEDGER_KEYSTORE_PASSWORD")


@pytest.mark.anvil
def test_cli_deploy_rpc_with_a_keystore(
    runner: CliRunner, cli_node: AnvilNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployer = dev_wallets(4)[3]
    path = _keystore(tmp_path, deployer, "s3cret")
    monkeypatch.setenv("KNOWLEDGER_KEYSTORE_PASSWORD", "s3cret")
    out = tmp_path / "rpc.json"
    args = ["deploy", "--target", "rpc", "--rpc-url", cli_node.url, "--chain-id", "31337"]
    result = runner.invoke(app, [*args, "--keystore", str(path), "--manifest", str(out)])
    assert result.exit_code == 0, result.output
    assert Manifest.load(out).deployer == deployer.address
