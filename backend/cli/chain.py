"""``knowledger deploy`` and ``knowledger devnet``: the contracts on a chain, and a local anvil devnet."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from backend.chain import (
    ChainClient,
    ChainTarget,
    connect_devnet,
    connect_embedded,
    connect_rpc,
    load_key,
)
from backend.chain.deploy import DEFAULT_MAX_CONSENT_DURATION, deploy_all
from backend.chain.devnet import ANVIL_CHAIN_ID, DEFAULT_RUN_DIR, AnvilNode, start_detached, stop_detached
from backend.chain.settings import ChainSettings
from backend.cli.app import app, devnet_app, err, fail, load_settings, out, user_errors

# ------------------------------------------------------------------------------------------------ deploy


def _connect_for_deploy(
    settings: ChainSettings,
    target: ChainTarget,
    rpc_url: str | None,
    chain_id: int | None,
    keystore: Path | None,
) -> ChainClient:
    key = settings.private_key.get_secret_value() if settings.private_key is not None else None
    password = (
        settings.keystore_password.get_secret_value() if settings.keystore_password is not None else None
    )
    keystore = keystore or settings.keystore_path
    if target is ChainTarget.EMBEDDED:
        return connect_embedded()
    url = rpc_url or settings.rpc_url
    url_option = "--rpc-url" if rpc_url else "KNOWLEDGER_RPC_URL"
    if target is ChainTarget.DEVNET:
        client = connect_devnet(url, expected_chain_id=chain_id or ANVIL_CHAIN_ID, url_option=url_option)
        if key or keystore:
            wallet = client.add_signer(load_key(key, keystore, password))
            client.accounts.remove(wallet)
            client.accounts.insert(0, wallet)  # an explicit key deploys instead of the dev account
        return client
    if not (rpc_url or settings.model_fields_set & {"rpc_url"}):
        fail("--target rpc needs the node's URL: pass --rpc-url or set KNOWLEDGER_RPC_URL")
    if chain_id is None:
        fail(
            "--target rpc needs the expected chain id (a guard against the wrong network): pass "
            "--chain-id or set "
            "KNOWLEDGER_CHAIN_ID"
        )
    wallet = load_key(key, keystore, password)  # MissingKey before touching the network
    return connect_rpc(
        url, chain_id, wallet.private_key, confirmations=settings.confirmations, url_option=url_option
    )


@app.command("deploy")
def deploy_command(
    target: Annotated[
        ChainTarget | None,
        typer.Option(
            "--target",
            help="embedded (in-process eth-tester), devnet (anvil) or rpc. Env: KNOWLEDGER_CHAIN_TARGET",
        ),
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option("--rpc-url", help="Node URL. Env: KNOWLEDGER_RPC_URL")
    ] = None,
    chain_id: Annotated[
        int | None, typer.Option("--chain-id", help="Chain id the node must report. Env: KNOWLEDGER_CHAIN_ID")
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Where to write the manifest. Env: KNOWLEDGER_MANIFEST_PATH"),
    ] = None,
    keystore: Annotated[
        Path | None,
        typer.Option("--keystore", help="Encrypted keystore JSON (password in KNOWLEDGER_KEYSTORE_PASSWORD)"),
    ] = None,
    admin: Annotated[
        str | None, typer.Option("--admin", help="Admin (notice versions); default: deployer")
    ] = None,
    registrar: Annotated[
        str | None,
        typer.Option("--registrar", help="The backend account that records consents; default: deployer"),
    ] = None,
    max_consent_days: Annotated[int, typer.Option("--max-consent-days", min=1, help="Longest consent")] = (
        DEFAULT_MAX_CONSENT_DURATION // 86_400
    ),
) -> None:
    """Deploy ConsentRegistry, PartnershipAgreements and SettlementLedger and print the manifest.

    Key: KNOWLEDGER_PRIVATE_KEY, or --keystore with KNOWLEDGER_KEYSTORE_PASSWORD; on a devnet the first
    deterministic account deploys if neither is set.
    """
    settings = load_settings()
    tgt = target or settings.chain_target
    with user_errors():
        client = _connect_for_deploy(settings, tgt, rpc_url, chain_id, keystore)
        err.print(
            f"deploying to {tgt.value} chain {client.chain_id} from {client.default_sender.address} ..."
        )
        deployment = deploy_all(
            client, admin=admin, registrar=registrar, max_consent_duration=max_consent_days * 86_400
        )
        path = manifest or settings.manifest_path
        if path is None and tgt is not ChainTarget.EMBEDDED:
            path = settings.model_copy(update={"chain_target": tgt}).default_manifest_path(client.chain_id)
        if path is not None:
            deployment.manifest.write(path)
            err.print(f"manifest written to {path}")
    out.print_json(deployment.manifest.to_json())


# ------------------------------------------------------------------------------------------------ devnet


def _print_accounts(node: AnvilNode) -> None:
    out.print("deterministic accounts (public test keys: never use them on a real network):")
    for i, w in enumerate(node.wallets()):
        out.print(f"  ({i}) {w.address}  0x{w.private_key.hex()}", markup=False)


def _check_node(url: str, url_option: str) -> dict[str, object]:
    client = connect_devnet(url, expected_chain_id=ANVIL_CHAIN_ID, url_option=url_option)
    funded = sum(1 for w in client.accounts if client.balance(w.address) > 0)
    return {"url": url, "chainId": client.chain_id, "block": client.block_number, "fundedAccounts": funded}


@devnet_app.callback(invoke_without_command=True)
def devnet_callback(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Check that a devnet answers at --rpc-url, then exit")
    ] = False,
    rpc_url: Annotated[str, typer.Option("--rpc-url", help="The devnet to check")] = "http://127.0.0.1:8545",
) -> None:
    """Start a devnet in the foreground ('start') or check a running one ('--check')."""
    if ctx.invoked_subcommand is not None:
        return
    if not check:
        out.print(ctx.get_help())
        raise typer.Exit(0)
    with user_errors():
        info = _check_node(rpc_url, "--rpc-url")
    out.print_json(json.dumps(info))


@devnet_app.command("start")
def devnet_start(
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port)")] = 8545,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    run_dir: Annotated[Path, typer.Option("--run-dir", help="PID file and log")] = DEFAULT_RUN_DIR,
    check: Annotated[
        bool, typer.Option("--check", help="Start, check chain id and funded accounts, stop (a smoke test)")
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Leave it running in the background (stop with `devnet stop`)")
    ] = False,
) -> None:
    """Run anvil in the foreground until Ctrl-C, printing its URL, chain id and accounts."""
    if detach:
        with user_errors():
            started = start_detached(run_dir, port, host)
        out.print(
            f"devnet running at {started.url} (chain id {started.chain_id}, pid {started.pid}, "
            f"log {started.log_file})",
            markup=False,
        )
        return
    node = AnvilNode(port=port or None, host=host, run_dir=run_dir)
    with user_errors():
        node.start()
    try:
        with user_errors():
            if check:
                info = _check_node(node.url, "--port")
                out.print_json(json.dumps(info))
                return
            out.print(
                f"devnet listening on [bold]{node.url}[/] (chain id {node.chain_id}, pid {node.pid}, "
                f"log {node.log_file})"
            )
            _print_accounts(node)
            out.print("Ctrl-C stops it.")
            _wait_forever(node.is_running)
            if not node.is_running():
                fail(f"anvil stopped unexpectedly; see {node.log_file}")
    finally:
        node.stop()


@devnet_app.command("stop")
def devnet_stop(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Where `start --detach` wrote its PID file")] = (
        DEFAULT_RUN_DIR
    ),
) -> None:
    """Stop a devnet started with 'devnet start --detach' (SIGTERM, wait, SIGKILL)."""
    if stop_detached(run_dir):
        out.print("devnet stopped")
    else:
        out.print(f"no devnet running (no live PID in {run_dir})", markup=False)


def _wait_forever(alive: Callable[[], bool]) -> None:
    try:
        while alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        err.print("stopping devnet ...")
