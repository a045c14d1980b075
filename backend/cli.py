"""The ``knowledger`` command.

Each command is a plain function registered on ``app`` (or a sub-app), so later commands (``serve``,
``demo``, ``train``, ``evaluate``) add themselves the same way. Failures the user can fix print one line that
names the option or environment variable to look at and exit with code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

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
from backend.chain.errors import ChainError
from backend.chain.settings import ChainSettings

if TYPE_CHECKING:
    from backend.container import Container
    from backend.core.config import Settings

app = typer.Typer(
    name="knowledger",
    help="KnowLedger: consent-gated recommendations with an on-chain consent registry and settlement ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
devnet_app = typer.Typer(
    help="A local anvil devnet (chain id 31337, deterministic accounts).", no_args_is_help=False
)
app.add_typer(devnet_app, name="devnet")

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    err.print(Text(f"error: {message}", style="bold red"))
    raise typer.Exit(EXIT_USAGE)


def _settings_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first.get("loc") else "?"
    return f"KNOWLEDGER_{field.upper()} is invalid: {first.get('msg', 'bad value')}"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the chain layer's named errors and bad settings into a one-line message and exit code 2."""
    try:
        yield
    except ChainError as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(_settings_error(exc))
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if os.environ.get("KNOWLEDGER_DEBUG"):
            raise
        err.print(
            Text(f"error: unexpected {type(exc).__name__}: {exc} (set KNOWLEDGER_DEBUG=1 for the traceback)")
        )
        raise typer.Exit(1) from None


def load_settings() -> ChainSettings:
    try:
        return ChainSettings()
    except ValidationError as exc:
        fail(_settings_error(exc))


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


@app.command("demo")
def demo_command(
    seed: Annotated[int, typer.Option(help="Seed of the demo world and of training.")] = 0,
    epochs: Annotated[
        int, typer.Option(min=1, max=500, help="Training epochs of the served model's torch network.")
    ] = 20,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the manifest and summary.json go.")] = Path(
        "var/demo"
    ),
) -> None:
    """Run the whole story through the service on the embedded chain: seed, train, deploy, grant,
    recommend, convert, settle, statement, reconcile, revoke, refusal."""
    from backend.demo import run_demo  # imports torch: only for this command

    # a log or a pipe gets 120 columns: the narrated tables do not fit the default 80
    console = out if out.is_terminal else Console(width=120, soft_wrap=True, highlight=False)
    with user_errors():
        run_demo(console, seed_=seed, epochs=epochs, out_dir=out_dir)


# ------------------------------------------------------------------------------------------ service


def _service_settings() -> Settings:
    from backend.core.config import Settings, describe_settings_error

    try:
        return Settings()
    except ValidationError as exc:
        fail(describe_settings_error(exc))


def _train_with_progress(path: Path, epochs: int, seed: int) -> tuple[Path, dict[str, dict[str, float]]]:
    from backend.services.seed import demo_split, train_with_progress

    split = demo_split(seed=seed)
    label = "training the served model on the demo world"
    artifact, metrics = train_with_progress(err, split, path, epochs, seed, label=label)
    return Path(artifact), metrics


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    seed_demo: Annotated[
        bool | None,
        typer.Option(
            "--seed-demo/--no-seed-demo", help="Seed the demo world (default: on the embedded chain)."
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(min=1, max=500, help="Epochs if a model must be trained first.")
    ] = 20,
) -> None:
    """Serve the API (and /health, /metrics). Settings come from KNOWLEDGER_* variables; on the embedded
    chain the demo world is seeded and a model trained when none exists, so this works on a fresh clone."""
    import uvicorn

    from backend.bootstrap import StartupError
    from backend.chain import ChainTarget
    from backend.container import Container
    from backend.main import create_app, limit_native_threads
    from recommender.artifacts import resolve_artifact

    settings = _service_settings()
    local = settings.chain_target is ChainTarget.EMBEDDED
    settings.seed_demo = local if seed_demo is None else seed_demo
    model_root = settings.resolved_model_path
    if local and (not model_root.exists() or resolve_artifact(model_root) is None):
        _train_with_progress(model_root, epochs, 0)
    try:
        with user_errors():
            container = Container.start(settings)
    except StartupError as exc:
        fail(str(exc))
    key_file = settings.state_dir / "operator.key"
    out.print(
        f"KnowLedger on http://{host}:{port}  (chain: {container.chain.target.value}, "
        f"database: {settings.resolved_database_url}, model: {container.model.version})"
    )
    if key_file.is_file():
        out.print(f"operator key in {key_file}; partner keys in {settings.state_dir / 'partner-keys.json'}")
    _print_pages(container, host, port, demo_learner=settings.seed_demo and local)
    limit_native_threads()
    try:
        uvicorn.run(
            create_app(container=container), host=host, port=port, log_level="warning", access_log=False
        )
    finally:
        container.close()


def _print_pages(container: Container, host: str, port: int, demo_learner: bool) -> None:
    """Where the web pages are; with the demo world, a sign-in link for its first learner (a fresh token:
    the fragment after # never reaches a server log)."""
    from sqlmodel import Session, col, select

    from backend.models import User

    base = f"http://{host}:{port}/app"
    out.print(
        f"pages: {base}/consent (learners)  {base}/partner (partner API key)  {base}/operator (operator key)"
    )
    if not demo_learner:
        return
    with Session(container.engine) as session:
        first = select(User).where(col(User.erased_at).is_(None)).order_by(col(User.created_at))
        user = session.exec(first).first()
        if user is None:
            return
        token = container.users.issue_token(session, user.id).token
        out.print(f"demo learner {user.platform_user_id}: {base}/consent#token={token}")


@app.command("train")
def train_command(
    epochs: Annotated[int, typer.Option(min=1, max=500, help="Training epochs of the torch network.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the demo world and of training.")] = 0,
    model_path: Annotated[
        Path | None, typer.Option("--out", help="Artifact root (default KNOWLEDGER_MODEL_PATH or var/model).")
    ] = None,
) -> None:
    """Train the served recommender on the demo world (every candidate tuned on validation learners,
    blended per route) and save a versioned artifact the service loads."""
    settings = _service_settings()
    root = model_path or settings.resolved_model_path
    with user_errors():
        artifact, metrics = _train_with_progress(root, epochs, seed)
    out.print(f"artifact {artifact}")
    out.print(
        json.dumps({k: {m: round(float(v), 4) for m, v in vals.items()} for k, vals in metrics.items()})
    )


@app.command("evaluate")
def evaluate_command(
    artifact: Annotated[
        Path | None,
        typer.Option(help="Artifact to evaluate (default: the newest under KNOWLEDGER_MODEL_PATH)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the demo world the artifact was trained on.")] = 0,
    k: Annotated[int, typer.Option(min=1, max=100, help="Cut-off of the ranking metrics.")] = 10,
    compare: Annotated[
        bool, typer.Option(help="Also run the full model comparison over several demo worlds (minutes).")
    ] = False,
) -> None:
    """Score the served artifact through the serving path on the demo world's held-out, cold-start
    learners (NDCG, recall, hit rate at k) against popularity; JSON on stdout."""
    import numpy as np

    from backend.services.seed import demo_split
    from recommender.artifacts import resolve_artifact
    from recommender.metrics import hit_rate_at_k, ndcg_at_k, recall_at_k
    from recommender.serving import ProductRanker

    settings = _service_settings()
    root = artifact or settings.resolved_model_path
    path = resolve_artifact(root) if root.exists() else None
    if path is None:
        fail(f"--artifact: no model artifact at {root}: run `knowledger train` first")
    with user_errors():
        ranker = ProductRanker.load(path)
        split = demo_split(seed=seed)
        popularity = np.asarray(split.train.interactions.sum(axis=0)).ravel()
        rows: dict[str, list[list[float]]] = {"hybrid": [], "popularity": []}
        for u in split.cold_eval_users:
            relevant = set(split.test[u].indices.tolist())
            features = split.profiles.profile(split.user_ids[u]).features()
            ranked = [r.index for r in ranker.rank(features, k=k, explain=False)]
            pop = [int(i) for i in np.argsort(-popularity, kind="stable")[:k]]
            for name, top in (("hybrid", ranked), ("popularity", pop)):
                rows[name].append(
                    [
                        ndcg_at_k(top, relevant, k),
                        recall_at_k(top, relevant, k),
                        hit_rate_at_k(top, relevant, k),
                    ]
                )
        report: dict[str, object] = {
            "artifact": str(path),
            "model_version": ranker.metadata.version,
            "users": len(split.cold_eval_users),
            "k": k,
        }
        for name, values in rows.items():
            mean = np.mean(np.asarray(values), axis=0)
            report[name] = {
                f"ndcg@{k}": round(float(mean[0]), 4),
                f"recall@{k}": round(float(mean[1]), 4),
                f"hit_rate@{k}": round(float(mean[2]), 4),
            }
        if compare:
            from recommender.evaluation.demo import run as run_comparison

            report["comparison"] = run_comparison(fast=True)
    out.print(json.dumps(report, indent=2, default=str))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
