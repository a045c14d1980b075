"""Many processes, for real: ``knowledger serve --workers 2``, and two ``serve`` commands (two hosts) sharing
one PostgreSQL database and one anvil node. The singleton workers run in one elected process; after
``kill -9`` of that process another takes over and every accepted conversion is recorded by the ledger
exactly once (read from the node's events); a revocation answered by one process is refused by the other's
very next request; partners and keys changed through one are known by the other at once.
``tests/faults.py`` holds the scenarios (``scripts/bench_api.py --chain devnet --db postgresql`` measures
the same failover).

Nothing here asserts on timings: the failover must happen, within a bound no healthy run comes near."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import faults

from .conftest import Demo

#: Far above any failover seen (about a second): a bound for a broken election, not a speed target.
GENEROUS_S = 60.0


@pytest.fixture
def model(demo: Demo) -> Path:
    return demo.model_dir


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in faults.os.environ.items() if not k.startswith("KNOWLEDGER_")} | env
    cmd = [sys.executable, "-m", "backend.cli", "serve", "--port", str(faults.free_port()), *args]
    return subprocess.run(cmd, cwd=faults.ROOT, env=full, capture_output=True, text=True, timeout=120)


def test_workers_on_the_embedded_chain_are_refused_with_a_pointer_to_the_devnet(tmp_path: Path) -> None:
    done = _serve({"KNOWLEDGER_STATE_DIR": str(tmp_path / "state")}, "--workers", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--workers 2: the embedded chain lives inside one process" in done.stderr
    assert "hardhat-free-devnet" in done.stderr and "KNOWLEDGER_CHAIN_TARGET=devnet" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was written


def test_workers_on_sqlite_are_refused_naming_postgresql(tmp_path: Path) -> None:
    env = {
        "KNOWLEDGER_STATE_DIR": str(tmp_path / "state"),
        "KNOWLEDGER_CHAIN_TARGET": "devnet",
        "KNOWLEDGER_RPC_URL": f"http://127.0.0.1:{faults.free_port()}",
    }
    done = _serve(env, "--workers", "3")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--workers 3: SQLite is a file for one process" in done.stderr
    assert "KNOWLEDGER_DATABASE_URL=postgresql" in done.stderr and "Traceback" not in done.stderr


def test_workers_on_a_port_another_server_listens_on_are_refused(tmp_path: Path) -> None:
    """Each API process gets a socket of its own (``SO_REUSEPORT``); the port is still checked first, so a
    server already there (one that did not opt into sharing its port) stops `serve` with a message."""
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    env = {
        "KNOWLEDGER_STATE_DIR": str(tmp_path / "state"),
        "KNOWLEDGER_CHAIN_TARGET": "devnet",
        "KNOWLEDGER_RPC_URL": f"http://127.0.0.1:{faults.free_port()}",
        "KNOWLEDGER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    }
    try:
        full = {k: v for k, v in faults.os.environ.items() if not k.startswith("KNOWLEDGER_")} | env
        cmd = [sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--workers", "2"]
        done = subprocess.run(cmd, cwd=faults.ROOT, env=full, capture_output=True, text=True, timeout=120)
    finally:
        busy.close()
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--port {port}: cannot listen on" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.anvil
@pytest.mark.postgres
def test_kill_9_of_the_leader_hands_the_workers_over_and_loses_or_doubles_nothing(
    tmp_path: Path, model: Path, anvil_bin: Path, pg_url: str
) -> None:
    result = faults.failover(tmp_path, model, pg_url, rate_hz=8.0, before_s=3.0, after_s=3.0)
    assert result["processes_answering"] == 2, result  # both processes answer on the one port
    # 64 connections opened at once are spread over both processes (each listens on its own socket: with
    # one shared socket the first to wake took most of them); a quarter each fails by chance ~1 in 10^4
    assert len(result["connections_per_process"]) == 2, result
    assert min(result["connections_per_process"]) >= 16, result
    assert result["processes_after"] == 2, result  # the killed process was replaced
    assert result["second_serve_refused"], result  # one `serve` per state directory, its workers its own
    assert result["successor"] is not None and result["successor"] != result["killed"], result
    assert result["failover_s"] is not None and result["failover_s"] < GENEROUS_S, result
    assert result["accepted"] > 0 and result["settled"] == result["accepted"], result
    assert (result["lost"], result["doubled"], result["rejected"], result["still_open"]) == (0, 0, 0, 0), (
        result
    )


@pytest.mark.anvil
@pytest.mark.postgres
def test_two_hosts_share_consent_partners_keys_and_one_leader(
    tmp_path: Path, model: Path, anvil_bin: Path, pg_url: str
) -> None:
    result = faults.two_hosts(tmp_path, model, pg_url, rounds=4)
    n = result["learners"]
    # the second host had no manifest and no operator key of its own: both came from the database
    assert not result["second_host_manifest_file"] and not result["second_host_operator_key_file"], result
    assert len(result["leaders"]) == 1 and result["leaders"] != ["None"], result  # one leader, both agree
    assert result["served_before_revoke"] == n, result
    assert result["refused_after_revoke"] == n, result  # revoked on one host, refused by the other's next
    assert result["served_after_grant"] == n, result
    assert result["new_partner_on_other_host"] == 200, result
    assert result["old_key_on_other_host"] == 401, result
    assert result["new_key_on_other_host"] == 200, result
