"""``knowledger serve`` and ``knowledger demo``: the service, and the whole story played through it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from backend.cli.app import app, err, fail, out, user_errors

if TYPE_CHECKING:
    from backend.container import Container
    from backend.core.config import Settings


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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="API processes sharing the port, each answering any request (more than 1: PostgreSQL and "
            "a devnet or JSON-RPC chain).",
        ),
    ] = 1,
) -> None:
    """Serve the API (and /health, /metrics). Settings come from KNOWLEDGER_* variables; on the embedded
    chain the demo world is seeded and a model trained when none exists, so this works on a fresh clone.

    Before anything is trained, seeded or written: the state directory is locked (a second `serve` on it is
    refused, naming the first, whatever the chain and the database) and the port is bound (a port in use is
    refused). The line "KnowLedger on http://…" is printed once the server accepts requests (with --workers,
    once every process does).

    With --workers N, this process checks, migrates, deploys and seeds as for one, then hands the bound port
    to N API processes (restarting any that dies) and stops them when it is stopped. Each builds its own
    connections to the database and the chain; the one elected through PostgreSQL runs the settler and the
    indexer."""
    from backend.chain import ChainTarget
    from backend.container import Container
    from backend.core.statelock import StateDirInUse, StateLock
    from backend.main import create_app, limit_native_threads
    from recommender.artifacts import resolve_artifact

    settings = _service_settings()
    local = settings.chain_target is ChainTarget.EMBEDDED
    if workers > 1:
        _check_workers(settings, workers)
    settings.seed_demo = local if seed_demo is None else seed_demo
    lock = StateLock(settings.state_dir)  # one `serve` per state directory, whatever its chain and database
    try:
        lock.acquire()
    except StateDirInUse as exc:
        fail(f"KNOWLEDGER_STATE_DIR: {exc}")
    sock = _bind(host, port, reuse_port=workers > 1)
    bound_port = int(sock.getsockname()[1])  # with `--port 0`, every process listens on the port chosen
    model_root = settings.resolved_model_path
    if local and (not model_root.exists() or resolve_artifact(model_root) is None):
        _train_with_progress(model_root, epochs, 0)
    if workers > 1:
        # everything is checked, deployed and seeded here; then the API processes start their own
        # containers, and the state directory stays locked by this command for as long as they serve
        with user_errors():
            checked = Container.start(settings)
        checked.close()  # what the readiness line names stays readable
        try:
            _run_processes(
                sock,
                workers,
                settings.keep_alive_s,
                lambda: _announce(checked, settings, host, port, local),
                lambda: _bind(host, bound_port, reuse_port=True, probe=False),
            )
        finally:
            lock.release()
        return
    with user_errors():
        container = Container.start(settings, lock=lock)
    limit_native_threads()
    try:
        _run(
            create_app(container=container),
            sock,
            settings.keep_alive_s,
            lambda: _announce(container, settings, host, port, local),
        )
    finally:
        container.close()


def _check_workers(settings: Settings, workers: int) -> None:
    """Several API processes need a chain outside this process and a database that elects the one running
    the settler and the indexer."""
    from backend.chain import ChainTarget

    if settings.chain_target is ChainTarget.EMBEDDED:
        fail(
            f"--workers {workers}: the embedded chain lives inside one process; to serve from several, run "
            "the chain as a devnet (hardhat-free-devnet/start.sh, see the README's \"On anvil, a testnet and "
            'PostgreSQL") with KNOWLEDGER_CHAIN_TARGET=devnet, and PostgreSQL'
        )
    if not settings.resolved_database_url.startswith("postgresql"):
        fail(
            f"--workers {workers}: SQLite is a file for one process, and the processes elect the one that "
            "settles and indexes through PostgreSQL: set KNOWLEDGER_DATABASE_URL=postgresql+psycopg://…"
        )


def _run_processes(
    sock: Any, workers: int, keep_alive_s: int, ready: Callable[[], None], listen: Callable[[], Any]
) -> None:
    """Serve from ``workers`` processes (uvicorn's supervisor: a fresh interpreter each, started again if it
    dies); ``ready`` runs once every one accepts requests.

    Each process listens on a socket of its own, bound to the same address with ``SO_REUSEPORT`` (``sock``
    for the first, ``listen()`` for each one after): the kernel spreads new connections evenly over them.
    With one shared socket, whichever process wakes first accepts most of a burst of connections (52 of
    64 measured), and a load balancer's long-lived connections then load one process while the other idles.
    This command binds each socket, hands it over unlistened and closes its own copy: a process listens only
    once it can answer, and one that dies takes its socket with it, so new connections go to the others
    until it is started again and ready."""
    import uvicorn
    from uvicorn.supervisors.multiprocess import Multiprocess

    class Supervisor(Multiprocess):
        started = False

        def __init__(self, config: uvicorn.Config) -> None:
            self._first: Any = sock
            self._handed: list[Any] = []
            super().__init__(config, sockets=[])

        @property
        def sockets(self) -> list[Any]:
            """Read once per process started: a socket of its own."""
            new, self._first = (self._first if self._first is not None else listen()), None
            self._handed.append(new)
            return [new]

        @sockets.setter
        def sockets(self, _value: list[Any]) -> None:  # Multiprocess.__init__ sets it; each read makes one
            pass

        def _close_handed_over(self) -> None:
            for handed in self._handed:  # the started process holds its own copy
                handed.close()
            self._handed.clear()

        def keep_subprocess_alive(self) -> None:
            super().keep_subprocess_alive()  # (runs after every signal handled, a restart's included)
            self._close_handed_over()

        def init_processes(self) -> None:
            super().init_processes()
            self._close_handed_over()
            pending = list(self.processes)
            while pending and not self.should_exit.is_set():
                self.handle_signals()
                if any(not p.process.is_alive() for p in pending):
                    return  # a process failed to start (it said why); the supervisor stops the others
                pending = [p for p in pending if not p.is_ready(timeout=1)]
            if not pending:
                self.started = True
                ready()

    config = uvicorn.Config(
        "backend.main:worker_app_factory",
        factory=True,
        workers=workers,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=keep_alive_s,
        # a process loading its model on a busy machine answers the supervisor's pings late: not hung
        timeout_worker_healthcheck=60,
    )
    supervisor = Supervisor(config)
    supervisor.run()
    if not supervisor.started:
        fail(f"--workers {workers}: an API process did not start (its error is above)")


def _bind(host: str, port: int, *, reuse_port: bool = False, probe: bool = True) -> Any:
    """The listening socket, bound now: a port in use stops `serve` before it starts anything.

    ``reuse_port``: bound with ``SO_REUSEPORT``, so that each API process can have its own socket on the
    address; the port is first ``probe``d by a socket without it, so a port that any other server (a second
    `serve` included) listens on is still refused."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def bound(reuse: bool) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            fail(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}): is another server using it?"
            )
        return sock

    if reuse_port and probe:
        bound(False).close()
    sock = bound(reuse_port)
    if not reuse_port:
        sock.listen(2048)
    # else: the API process that receives it listens once its app has started (uvicorn's server calls
    # listen() when it starts serving), so the kernel sends it no connection before it can answer: not at
    # start, and not while the supervisor restarts a process that died
    sock.set_inheritable(True)
    return sock


def _run(app: Any, sock: Any, keep_alive_s: int, ready: Callable[[], None]) -> None:
    """Serve ``app`` on ``sock`` with uvicorn; ``ready`` runs once the server accepts requests."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                ready()

    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=keep_alive_s
    )
    Server(config).run(sockets=[sock])


def _announce(container: Container, settings: Settings, host: str, port: int, local: bool) -> None:
    out.print(
        f"KnowLedger on http://{host}:{port}  (chain: {container.chain.target.value}, "
        f"database: {settings.resolved_database_url}, model: {container.model.version})"
    )
    key_file = settings.state_dir / "operator.key"
    if key_file.is_file():
        out.print(f"operator key in {key_file}; partner keys in {settings.state_dir / 'partner-keys.json'}")
    _print_pages(container, host, port, demo_learner=settings.seed_demo and local)


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
