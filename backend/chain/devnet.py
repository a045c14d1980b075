"""A local anvil devnet, managed like titanoboa's anvil fixture: start on a free port, wait until it answers
``eth_chainId``, stop cleanly (terminate, wait, kill).

The binary comes from npm (``@foundry-rs/anvil-linux-amd64``, installed by ``npm ci`` at the repository root);
``KNOWLEDGER_ANVIL_BIN`` overrides it and an ``anvil`` on ``PATH`` is the last resort. The chain id is fixed
(31337) and the accounts come from the standard public test mnemonic, so a devnet is the same every time.
Those keys are public knowledge: they exist only for local development and tests.

``knowledger devnet start --detach`` / ``knowledger devnet stop`` (what ``hardhat-free-devnet/start.sh`` and
``stop.sh`` run) keep a node running in the background with its PID file and log under a run directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_account import Account

from .constants import REPO_ROOT
from .exceptions import ChainError
from .types import Wallet

NPM_ANVIL = REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
DEFAULT_RUN_DIR = REPO_ROOT / ".devnet"

ANVIL_CHAIN_ID = 31337
#: The standard public test mnemonic (anvil's and hardhat's default).
#: Never fund its accounts on a real chain.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_ACCOUNTS = 10
ANVIL_BALANCE_ETH = 10_000

#: States anvil keeps on disk (past its 500 in memory): enough that the devnet serves as an archive node.
ARCHIVE_STATES = 10_000_000


class AnvilUnavailable(ChainError):
    """The anvil binary is missing or the node did not start."""


def anvil_binary() -> Path:
    """Where the anvil binary is; ``AnvilUnavailable`` saying how to install it otherwise."""
    override = os.environ.get("KNOWLEDGER_ANVIL_BIN")
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise AnvilUnavailable(
            f"KNOWLEDGER_ANVIL_BIN={override} is not an executable file", option="KNOWLEDGER_ANVIL_BIN"
        )
    if NPM_ANVIL.is_file() and os.access(NPM_ANVIL, os.X_OK):
        return NPM_ANVIL
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise AnvilUnavailable(
        f"anvil not found at {NPM_ANVIL}: run `npm ci` in {REPO_ROOT} (it installs "
        f"@foundry-rs/anvil-linux-amd64), "
        "or set KNOWLEDGER_ANVIL_BIN",
        option="KNOWLEDGER_ANVIL_BIN",
    )


def anvil_available() -> bool:
    try:
        anvil_binary()
    except AnvilUnavailable:
        return False
    return True


@lru_cache(maxsize=8)
def _derive_keys(mnemonic: str, count: int) -> tuple[bytes, ...]:
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        bytes(Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key) for i in range(count)
    )


def dev_wallets(count: int = ANVIL_ACCOUNTS, mnemonic: str = ANVIL_MNEMONIC) -> list[Wallet]:
    """The devnet's deterministic accounts (derived from the test mnemonic, BIP-44 path m/44'/60'/0'/0/i)."""
    return [Wallet(k) for k in _derive_keys(mnemonic, count)]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rpc_request(url: str, method: str, params: Sequence[Any] = (), timeout: float = 2.0) -> Any:
    """One JSON-RPC call with the standard library (readiness probes and the stop script need no web3)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise ChainError(f"{method} failed on {url}: {reply['error']}")
    return reply.get("result")


class AnvilControls:
    """The test-time controls of a devnet through anvil's JSON-RPC methods (``evm_increaseTime``,
    ``evm_mine``, ``evm_snapshot``, ``evm_revert``); ``raw(method, params)`` sends one request."""

    def __init__(self, raw: Callable[[str, Sequence[Any]], Any]) -> None:
        self._raw = raw

    def increase_time(self, seconds: int) -> None:
        self._raw("evm_increaseTime", [int(seconds)])
        self._raw("evm_mine", [])

    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self._raw("evm_mine", [])

    def snapshot(self) -> Any:
        return self._raw("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        if not self._raw("evm_revert", [snapshot_id]):
            raise ChainError(
                f"evm_revert({snapshot_id}) failed: anvil snapshots can be reverted to only once"
            )


def _die_with_parent_hook() -> Callable[[], None] | None:
    """Linux: a pre-exec hook that has the kernel SIGTERM the node if the process that started it dies (no
    orphaned nodes). libc is loaded here, in the parent, so the child only makes one foreign call."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


class AnvilNode:
    """An anvil process on ``host:port``; a context manager (``with AnvilNode() as node: node.url``)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        chain_id: int = ANVIL_CHAIN_ID,
        mnemonic: str = ANVIL_MNEMONIC,
        accounts: int = ANVIL_ACCOUNTS,
        balance_eth: int = ANVIL_BALANCE_ETH,
        run_dir: Path | str | None = None,
        binary: Path | str | None = None,
        block_time: float | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        die_with_parent: bool = True,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = port or 0
        self.chain_id = chain_id
        self.mnemonic = mnemonic
        self.accounts = accounts
        self.balance_eth = balance_eth
        self._own_run_dir = run_dir is None
        self.run_dir = (
            Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="knowledger-anvil-"))
        )
        self.binary = Path(binary) if binary is not None else None
        self.block_time = block_time
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ info
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "anvil.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "anvil.log"

    @property
    def info_file(self) -> Path:
        return self.run_dir / "anvil.json"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def wallets(self) -> list[Wallet]:
        """The node's funded accounts (deterministic: the same keys on every start)."""
        return dev_wallets(self.accounts, self.mnemonic)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        binary = self.binary or anvil_binary()
        cmd = [
            str(binary),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--mnemonic",
            self.mnemonic,
            "--accounts",
            str(self.accounts),
            "--balance",
            str(self.balance_eth),
            # an archive: anvil keeps 500 states in memory and 3,600 on disk, then drops older ones, and an
            # eth_call at a dropped block fails (BlockOutOfRangeError); `knowledger audit` replays every
            # answer at the block it names, however old
            "--max-persisted-states",
            str(ARCHIVE_STATES),
        ]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        cmd += list(self.extra_args)
        return cmd

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> AnvilNode:
        """Start the node and wait until it answers; retries on another port if the free port was taken."""
        if self.is_running():
            return self
        attempts = 1 if self._requested_port else 3
        last: AnvilUnavailable | None = None
        for _ in range(attempts):
            if not self._requested_port:
                self.port = free_port(self.host)
            try:
                self._spawn_and_wait()
                return self
            except AnvilUnavailable as exc:
                last = exc
                self._kill()
                if "in use" not in str(exc).lower():
                    break
        assert last is not None
        raise last

    def _spawn_and_wait(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,  # never a pipe: a full pipe would block the node
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent_hook() if self.die_with_parent else None,
            )
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.02
        while True:
            if self.process.poll() is not None:
                raise AnvilUnavailable(
                    f"anvil exited with code {self.process.returncode} while starting on {self.url}: "
                    f"{self._log_tail()}"
                )
            try:
                chain_id = int(rpc_request(self.url, "eth_chainId", timeout=1.0), 16)
                break
            except (OSError, urllib.error.URLError, ValueError, ChainError):
                pass
            if time.monotonic() > deadline:
                raise AnvilUnavailable(
                    f"anvil did not answer on {self.url} within {self.startup_timeout:.0f}s: "
                    f"{self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        if chain_id != self.chain_id:
            raise AnvilUnavailable(f"anvil on {self.url} reports chain {chain_id}, expected {self.chain_id}")
        self.pid_file.write_text(f"{self.process.pid}\n", encoding="utf-8")
        self.info_file.write_text(
            json.dumps({"url": self.url, "chainId": self.chain_id, "pid": self.process.pid}, indent=1) + "\n",
            encoding="utf-8",
        )

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def _kill(self) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.process = None

    def stop(self) -> None:
        """Terminate the node, wait, kill if it does not exit; remove its PID file (and a temporary run "
        "dir)."""
        self._kill()
        with contextlib.suppress(OSError):
            self.pid_file.unlink(missing_ok=True)
            self.info_file.unlink(missing_ok=True)
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"AnvilNode({self.url}, chain {self.chain_id}, {state})"


# ---------------------------------------------------------------------------- detached (scripts)


def _read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / "anvil.pid").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _is_anvil(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"anvil" in cmdline


def start_detached(run_dir: Path, port: int = 8545, host: str = "127.0.0.1") -> AnvilNode:
    """Start a node that outlives this process (PID file and log in ``run_dir``)."""
    pid = _read_pid(run_dir)
    if pid is not None and _is_anvil(pid):
        raise AnvilUnavailable(f"a devnet is already running (pid {pid}, see {run_dir}): stop it first")
    node = AnvilNode(port=port, host=host, run_dir=run_dir, die_with_parent=False)
    node.start()
    return node


def stop_detached(run_dir: Path, timeout: float = 5.0) -> bool:
    """Stop the node whose PID file is in ``run_dir``: SIGTERM, wait, SIGKILL. False if none was running."""
    pid = _read_pid(run_dir)
    if pid is None or not _is_anvil(pid):
        (run_dir / "anvil.pid").unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_anvil(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _is_anvil(pid):
        os.kill(pid, signal.SIGKILL)
    (run_dir / "anvil.pid").unlink(missing_ok=True)
    (run_dir / "anvil.json").unlink(missing_ok=True)
    return True
