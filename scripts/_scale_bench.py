"""The scale-out figures of ``scripts/bench_api.py --chain devnet --db postgresql``.

- ``workers_2_over_1``: the recommend throughput of ``knowledger serve --workers 2`` over that of
  ``--workers 1``, on the same anvil node, the same fresh PostgreSQL database and the same consented
  learners, measured back to back in one run. The load comes from Debian's ``wrk`` (a C load generator: it
  costs the server's CPUs far less than a Python client would), closed loop, every connection sending back
  to back; the rps of each set-up is the mean of the two runs (``--workers 1``, ``--workers 2``,
  ``--workers 1``, ``--workers 2``) so that a slow patch of a shared machine is less likely to decide the
  ratio. Without ``wrk`` (and no way to install it) the asyncio closed loop of ``_loadgen.py`` measures
  instead, and the figures say so.
- ``failover_s``, ``failover_lost``, ``failover_doubled``: :func:`tests.faults.failover` (``serve
  --workers 2`` on its own fresh database and anvil node, conversions posted at 10 per second, the process
  that leads the settler and the indexer killed with SIGKILL): seconds from the kill until ``/health`` names
  another leader; accepted conversions the ledger never recorded, and those it recorded twice (read from
  the node's events).

The ratio depends on how many CPUs the server gets: with two, the second process shares them with the load
generator, the node and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loadgen import open_connections, request_bytes, saturate  # noqa: E402

#: Where fresh benchmark databases are created (the server's maintenance connection).
ADMIN_URL = os.environ.get("KNOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def log(msg: str) -> None:
    print(f"[bench_api] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ PostgreSQL
@contextmanager
def fresh_database(prefix: str = "knowledger_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); yields its SQLAlchemy URL."""
    import psycopg

    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as exc:
        raise SystemExit(
            f"PostgreSQL not reachable at {ADMIN_URL} ({exc}); set KNOWLEDGER_TEST_POSTGRES"
        ) from None
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# ------------------------------------------------------------------------------------------ wrk
def ensure_wrk() -> str | None:
    """The ``wrk`` binary; installed from Debian when missing and this is root with apt-get; else None."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    log("installing Debian's wrk (the throughput load generator)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return shutil.which("wrk")


_LUA = """
local subjects = {%(subjects)s}
local i = %(offset)d
request = function()
  i = i %% #subjects + 1
  return wrk.format("POST", "/api/v1/recommendations",
    {["Content-Type"] = "application/json", ["X-API-Key"] = "%(key)s"},
    '{"subject":"' .. subjects[i] .. '","k":5}')
end
"""


def wrk_recommend(
    wrk: str, port: int, bank_key: str, subjects: list[str], connections: int, duration: float, work: Path
) -> dict[str, Any]:
    """Closed-loop recommend throughput with ``wrk`` (one thread); every answer must be a 200."""
    script = work / "recommend.lua"
    quoted = ", ".join(f'"{s}"' for s in subjects)
    script.write_text(_LUA % {"subjects": quoted, "offset": 0, "key": bank_key}, encoding="utf-8")
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "--latency"]
    done = subprocess.run(
        [*cmd, "-s", str(script), f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True
    )
    text = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", text)
    return {
        "rps": round(rps, 1),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        "p99_ms": _ms(p99.group(1), p99.group(2)) if p99 else None,
    }


def _ms(value: str, unit: str) -> float:
    return round(float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 2)


def loadgen_recommend(
    port: int, bank_key: str, subjects: list[str], connections: int, duration: float
) -> dict[str, Any]:
    """The same closed loop from ``_loadgen.py`` (when ``wrk`` is not available)."""
    reqs = [
        request_bytes("POST", "/api/v1/recommendations", {"X-API-Key": bank_key}, {"subject": s, "k": 5})
        for s in subjects
    ]

    async def run() -> dict[str, Any]:
        conns = await open_connections(port, connections)
        result = (await saturate(conns, reqs, 0.0, duration)).summary()
        for c in conns:
            c.close()
        return result

    summary = asyncio.run(run())
    bad = sum(v for k, v in summary["statuses"].items() if k != "200")
    return {
        "rps": summary["rps"],
        "non_2xx": bad,
        "socket_errors": summary["errors"],
        "p99_ms": summary["p99_ms"],
    }


# ------------------------------------------------------------------------------------------ the service
def serve_workers(
    workers: int, state: Path, artifact: Path, operator_key: str, rpc_url: str, database_url: str
) -> Any:
    """``knowledger serve --workers N`` on an existing state directory (deployed and seeded), once it
    printed its readiness line (``tests.faults.Served``); the workers settle and index only on demand."""
    from tests import faults

    env = {
        "KNOWLEDGER_DATABASE_URL": database_url,
        "KNOWLEDGER_SETTLE_INTERVAL_S": "0",
        "KNOWLEDGER_INDEX_INTERVAL_S": "0",
    }
    chain = {
        "KNOWLEDGER_CHAIN_TARGET": "devnet",
        "KNOWLEDGER_RPC_URL": rpc_url,
        "KNOWLEDGER_MANIFEST_PATH": str(state / "manifest.json"),
    }
    return faults.serve(
        state,
        artifact,
        chain=chain,
        env=env,
        operator_key=operator_key,
        seed_demo=False,
        args=("--workers", str(workers)),
    )


def workers_ratio(
    state: Path,
    artifact: Path,
    operator_key: str,
    rpc_url: str,
    database_url: str,
    bank_key: str,
    subjects: list[str],
    *,
    connections: int,
    duration: float,
    warmup: float,
    repeats: int = 2,
) -> dict[str, Any]:
    """``workers_2_over_1`` and the runs behind it (``--workers 1`` and ``2``, alternated ``repeats``
    times)."""
    wrk = ensure_wrk()
    tool = "wrk (1 thread)" if wrk else "_loadgen.py closed loop (wrk not available)"
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="knowledger-wrk-") as tmp:

        def measure(port: int, seconds: float) -> dict[str, Any]:
            if wrk:
                return wrk_recommend(wrk, port, bank_key, subjects, connections, seconds, Path(tmp))
            return loadgen_recommend(port, bank_key, subjects, connections, seconds)

        for _ in range(repeats):
            for workers in (1, 2):
                served = serve_workers(workers, state, artifact, operator_key, rpc_url, database_url)
                try:
                    log(f"recommend rps, --workers {workers}, {connections} connections, {duration:g} s")
                    measure(served.port, warmup)  # every process loaded, connected, its caches warm
                    run = measure(served.port, duration)
                    if run["non_2xx"]:
                        raise SystemExit(f"--workers {workers}: {run['non_2xx']} answers were not 200: {run}")
                    runs[workers].append(run)
                    log(f"  {run['rps']} req/s")
                finally:
                    served.stop()
    mean = {w: sum(r["rps"] for r in rs) / len(rs) for w, rs in runs.items()}
    return {
        "workers_2_over_1": round(mean[2] / mean[1], 3),
        "rps_1_worker": round(mean[1], 1),
        "rps_2_workers": round(mean[2], 1),
        "runs": {str(w): rs for w, rs in runs.items()},
        "load": tool,
        "connections": connections,
        "duration_s": duration,
    }


def failover(artifact: Path, *, rate_hz: float = 10.0) -> dict[str, Any]:
    """:func:`tests.faults.failover` on its own fresh database and anvil node."""
    from tests import faults

    with (
        fresh_database("knowledger_failover") as url,
        tempfile.TemporaryDirectory(prefix="knowledger-fo-") as tmp,
    ):
        log("failover: serve --workers 2, conversions at 10/s, kill -9 of the leader")
        return faults.failover(Path(tmp), artifact, url, rate_hz=rate_hz, before_s=4.0, after_s=4.0)
