"""Consent-gated API benchmark: ``python scripts/bench_api.py`` prints JSON.

Starts the service (``uvicorn``, one process: the embedded chain lives in it) on a free loopback port with
the demo world seeded, creates consented learners through the API, and loads it with 200 concurrent
keep-alive connections (``wrk`` for the closed loops, the small asyncio client of ``_loadgen.py`` for the
rest). With two or more CPUs the server is pinned to CPU 0 and the load generator to CPU 1.

- ``recommend`` / ``trivial``: ``rps`` is the capacity (closed loop, 200 connections sending back to back);
  ``p50_ms`` / ``p99_ms`` are latencies at 200 concurrent clients at a stated offered load (open loop, half
  the recommend capacity, the same rate for both endpoints), measured from each request's scheduled time.
  ``trivial`` is ``GET /api/v1/ping`` of the same app (same middleware, no chain, no database).
- ``ratio``: recommend rps / trivial rps.
- ``cpu_ms_per_recommendation``: CPU time the server process used (user + system, all its threads, from
  ``/proc/<pid>/stat``) during the saturated recommend phase, over the recommendations it answered then.
- ``revocation_to_refusal_ms``: p95 over learners of the time from sending the revoke call to receiving the
  first 403 for that learner, while the paced recommend load runs. ``stale_after_revoke`` counts 200s
  received for a learner after its revoke call returned (must be 0).

Before the closed loops, each of their learners is asked for once (``config.first_request_ms``: the first
consent check of a learner after their grant reads the registry in the interpreted EVM); the closed loops
measure the steady state.

The closed-loop phases use Debian's ``wrk`` (a C load generator, one thread; installed when missing and
this runs as root) when it is there, else the asyncio closed loop of ``_loadgen.py`` (which spends CPU the
server could use on two cores). The open-loop latency phases always use ``_loadgen.py``.

``--chain devnet --db postgresql`` is the scale-out set-up: anvil from npm and a fresh PostgreSQL database
(created on the server of ``KNOWLEDGER_TEST_POSTGRES``, default 127.0.0.1:5432, and dropped afterwards).
The figures above are then measured on it, and ``_scale_bench.py`` adds ``workers_2_over_1`` (recommend rps
of ``knowledger serve --workers 2`` over ``--workers 1``, measured with Debian's ``wrk``, installed when
missing) and ``failover_s``, ``failover_lost``, ``failover_doubled`` (``kill -9`` of the process that leads
the settler and the indexer under a stream of conversions). Elsewhere these four are null: the embedded
chain lives in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scale_bench  # noqa: E402
from _loadgen import Connection, open_connections, paced, request_bytes, saturate  # noqa: E402

OPERATOR_KEY = "op_bench_" + secrets.token_hex(12)


def log(msg: str) -> None:
    print(f"[bench_api] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    state: Path,
    artifact: Path,
    port: int,
    pin: bool,
    rpc_url: str | None = None,
    database_url: str | None = None,
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        KNOWLEDGER_STATE_DIR=str(state),
        KNOWLEDGER_MODEL_PATH=str(artifact),
        KNOWLEDGER_OPERATOR_KEY=OPERATOR_KEY,
        KNOWLEDGER_SEED_DEMO="1",
        KNOWLEDGER_SETTLE_INTERVAL_S="0",
        KNOWLEDGER_INDEX_INTERVAL_S="0",
        KNOWLEDGER_CHAIN_TARGET="embedded" if rpc_url is None else "devnet",
    )
    if rpc_url is not None:
        env.update(KNOWLEDGER_RPC_URL=rpc_url, KNOWLEDGER_MANIFEST_PATH=str(state / "manifest.json"))
    env.pop("KNOWLEDGER_DATABASE_URL", None)
    if database_url is not None:
        env["KNOWLEDGER_DATABASE_URL"] = database_url
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "backend.main:app_factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--backlog",
        "4096",
    ]
    if pin:
        cmd = ["taskset", "-c", "0", *cmd]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"the server exited: {err[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become healthy")


def make_users(api: httpx.Client, split: Any, n: int) -> list[dict[str, str]]:
    """Learners with profiles and both gate purposes granted to the bank, through the API."""
    op = {"X-API-Key": OPERATOR_KEY}
    users = []
    for i in range(n):
        r = api.post(
            "/api/v1/users", json={"platform_user_id": f"bench-{i}-{secrets.token_hex(3)}"}, headers=op
        )
        r.raise_for_status()
        u = r.json()
        profile = split.profiles.profile(split.user_ids[i]).to_dict()
        courses = split.train_dataset.items["item_id"].tolist()[i % 50 : i % 50 + 4]
        api.put(
            f"/api/v1/users/{u['id']}/profile",
            json={"profile": profile, "course_ids": courses, "product_ids": []},
            headers=op,
        ).raise_for_status()
        auth = {"Authorization": f"Bearer {u['token']}"}
        for purpose in ("profiling", "product_recommendation"):
            api.put(f"/api/v1/me/consents/bank/{purpose}", headers=auth).raise_for_status()
        users.append({"pseudonym": u["pseudonym"], "token": u["token"]})
        if (i + 1) % 50 == 0:
            log(f"  {i + 1}/{n} learners consented")
    return users


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_WRK_LUA = """
local bodies = {%(bodies)s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("%(method)s", "%(path)s", {%(headers)s}, bodies[i])
end
"""


def wrk_saturate(
    wrk: str, port: int, method: str, path: str, headers: dict[str, str], bodies: list[str | None],
    connections: int, warmup: float, duration: float, pin_cpu: int | None,
) -> dict[str, Any]:  # fmt: skip
    """Closed loop with ``wrk`` (one thread, ``connections`` kept-alive connections): a warm-up run, then
    the measured run, during which the server's CPU time is read. Same summary keys as ``_loadgen``."""
    hdrs = dict(headers)
    if any(b is not None for b in bodies):
        hdrs["Content-Type"] = "application/json"
    lua = _WRK_LUA % {
        "bodies": ", ".join("nil" if b is None else json.dumps(b) for b in bodies),
        "method": method,
        "path": path,
        "headers": ", ".join(f'["{k}"] = "{v}"' for k, v in hdrs.items()),
    }
    with tempfile.TemporaryDirectory(prefix="knowledger-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(lua, encoding="utf-8")

        def once(seconds: float) -> str:
            cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency"]
            cmd += ["-s", str(script), f"http://127.0.0.1:{port}"]
            if pin_cpu is not None and shutil.which("taskset"):
                cmd = ["taskset", "-c", str(pin_cpu), *cmd]
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

        if warmup > 0:
            once(warmup)
        cpu0, t0 = cpu_seconds(SERVER_PID[0]), time.perf_counter()
        text = once(duration)
        cpu = cpu_seconds(SERVER_PID[0]) - cpu0
        wall = time.perf_counter() - t0
    log(
        "  wrk: "
        + " | ".join(line.strip() for line in text.splitlines() if "requests in" in line or "Latency" in line)
    )
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    lat = {q: re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)\b", text) for q in ("50", "99")}
    bad = int(non_2xx.group(1)) if non_2xx else 0

    def ms(m: re.Match[str] | None) -> float:
        return (
            math.nan
            if m is None
            else round(float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)], 3)
        )

    return {
        "requests": total,
        "rps": round(rps, 1),
        "p50_ms": ms(lat["50"]),
        "p99_ms": ms(lat["99"]),
        "statuses": {"200": total - bad} | ({"non_2xx": bad} if bad else {}),
        "errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        "server_cpu_s": round(cpu, 3),
        "server_cpu_share": round(cpu / wall, 3) if wall > 0 else math.nan,
        "load": "wrk (1 thread)",
    }


#: The server's pid (set once it started), for its CPU time.
SERVER_PID: list[int] = [0]


async def loadgen_saturate(
    conns: list[Connection], requests: list[bytes], warmup: float, duration: float
) -> dict[str, Any]:
    """The closed loop of ``_loadgen.py`` (when ``wrk`` is not available), with the server's CPU time over
    the measured window (read when the window opens and closes)."""
    cpu: list[float] = []

    async def mark(at: float) -> None:
        await asyncio.sleep(at)
        cpu.append(cpu_seconds(SERVER_PID[0]))

    marks = [asyncio.create_task(mark(warmup)), asyncio.create_task(mark(warmup + duration))]
    result = await saturate(conns, requests, warmup, duration)
    await asyncio.gather(*marks)
    summary = result.summary()
    summary["server_cpu_s"] = round(cpu[1] - cpu[0], 3)
    summary["server_cpu_share"] = round((cpu[1] - cpu[0]) / duration, 3)
    summary["load"] = "_loadgen.py closed loop"
    return summary


def prime(api: httpx.Client, bank_key: str, users: list[dict[str, str]]) -> float:
    """Ask once for each learner the closed loops use, one after another; returns the mean seconds.

    The first consent check of a learner after their grant reads the registry in the interpreted EVM (a few
    ms each, three calls); every later one is answered by the consent view until the chain says that
    learner's consent changed. The closed loops measure the steady state; this first pass is reported apart
    (``config.first_request_ms``) and the revocations measure the EVM read under load."""
    t0 = time.perf_counter()
    for u in users:
        r = api.post(
            "/api/v1/recommendations",
            json={"subject": u["pseudonym"], "k": 5},
            headers={"X-API-Key": bank_key},
        )
        r.raise_for_status()
    return (time.perf_counter() - t0) / max(1, len(users))


async def measure(
    port: int, bank_key: str, users: list[dict[str, str]], args: argparse.Namespace
) -> dict[str, Any]:
    clients = args.clients
    bank = {"X-API-Key": bank_key}
    ping = [request_bytes("GET", "/api/v1/ping", {})]
    bodies = [json.dumps({"subject": u["pseudonym"], "k": 5}, separators=(",", ":")) for u in users[:clients]]
    recs = [
        request_bytes("POST", "/api/v1/recommendations", bank, {"subject": u["pseudonym"], "k": 5})
        for u in users[:clients]
    ]
    wrk = None if args.no_wrk else _scale_bench.ensure_wrk()
    pin_cpu = args.loadgen_cpu

    tool = "wrk" if wrk else "_loadgen"
    log(f"capacity: trivial, {clients} connections, {args.warmup}+{args.duration} s ({tool})")
    if wrk:
        trivial_sat = await asyncio.to_thread(
            wrk_saturate,
            wrk,
            port,
            "GET",
            "/api/v1/ping",
            {},
            [None],
            clients,
            args.warmup,
            args.duration,
            pin_cpu,
        )
        log(f"capacity: recommend, {clients} connections, {args.warmup}+{args.duration} s (wrk)")
        rec_sat = await asyncio.to_thread(
            wrk_saturate, wrk, port, "POST", "/api/v1/recommendations", bank, list(bodies), clients,
            args.warmup, args.duration, pin_cpu,
        )  # fmt: skip
        conns = await open_connections(port, clients)
    else:
        conns = await open_connections(port, clients)
        trivial_sat = await loadgen_saturate(conns, ping, args.warmup, args.duration)
        log(f"capacity: recommend, {clients} connections, {args.warmup}+{args.duration} s (_loadgen)")
        rec_sat = await loadgen_saturate(conns, recs, args.warmup, args.duration)
    if set(rec_sat["statuses"]) != {"200"} or rec_sat["errors"]:
        raise SystemExit(f"recommend returned {rec_sat['statuses']}, errors {rec_sat['errors']}")
    rec_sat["cpu_ms_per_request"] = round(1e3 * rec_sat["server_cpu_s"] / max(1, rec_sat["requests"]), 3)
    trivial_sat["cpu_ms_per_request"] = round(
        1e3 * trivial_sat["server_cpu_s"] / max(1, trivial_sat["requests"]), 3
    )
    log(f"  recommend {rec_sat['rps']} req/s, {rec_sat['cpu_ms_per_request']} ms CPU per request")
    rate = max(10.0, 0.5 * rec_sat["rps"])

    log(f"latency at {rate:.0f} req/s offered over {clients} connections")
    trivial_lat = await paced(conns, ping, rate, 1.0, args.duration)
    rec_lat = await paced(conns, recs, rate, 1.0, args.duration)
    if set(rec_lat.statuses) != {200} or rec_lat.errors:
        raise SystemExit(f"recommend returned {rec_lat.statuses}, errors {rec_lat.errors}")

    revocable = users[clients : clients + args.revocations]
    half = len(revocable) // 2
    probe = await Connection.open(port)
    revoker = await Connection.open(port)
    stale = 0

    async def revoke_and_wait(u: dict[str, str]) -> tuple[float, float]:
        nonlocal stale
        auth = {"Authorization": f"Bearer {u['token']}"}
        ask = request_bytes("POST", "/api/v1/recommendations", bank, {"subject": u["pseudonym"], "k": 5})
        status, _ = await probe.send(ask)
        assert status == 200, f"learner not consented before the revocation: {status}"
        t0 = time.perf_counter()
        status, _ = await revoker.send(
            request_bytes("DELETE", "/api/v1/me/consents/bank/product_recommendation", auth)
        )
        assert status == 200, f"revoke failed: {status}"
        call = time.perf_counter() - t0
        while True:
            status, _ = await probe.send(ask)
            if status == 403:
                return time.perf_counter() - t0, call
            stale += 1  # a 200 after the revoke call returned
            if stale > 1000:
                raise SystemExit("recommendations kept being served after a revocation")

    log(f"revocation to refusal: {half} learners, no other traffic")
    idle = [await revoke_and_wait(u) for u in revocable[:half]]
    bg_rate = max(10.0, 0.2 * rec_sat["rps"])
    log(f"revocation to refusal: {len(revocable) - half} learners under {bg_rate:.0f} req/s")
    stop = asyncio.Event()

    async def background() -> None:
        while not stop.is_set():
            await paced(conns, recs, bg_rate, 0.0, 1.0)

    bg = asyncio.create_task(background())
    await asyncio.sleep(1.0)
    loaded = []
    for u in revocable[half:]:
        loaded.append(await revoke_and_wait(u))
        await asyncio.sleep(0.2)
    stop.set()
    await bg

    def stats(samples: list[tuple[float, float]]) -> dict[str, float]:
        ms = np.asarray([s[0] for s in samples]) * 1e3
        call = np.asarray([s[1] for s in samples]) * 1e3
        return {
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "max_ms": round(float(ms.max()), 2),
            "revoke_call_p50_ms": round(float(np.percentile(call, 50)), 2),
            "samples": len(ms),
        }

    for c in (*conns, probe, revoker):
        c.close()
    return {
        "trivial_sat": trivial_sat,
        "recommend_sat": rec_sat,
        "trivial_lat": trivial_lat.summary(),
        "recommend_lat": rec_lat.summary(),
        "offered_rps": round(rate, 1),
        "revocation": {
            "all": stats(idle + loaded),
            "no_other_traffic": stats(idle),
            "under_load": stats(loaded) | {"background_rps": round(bg_rate, 1)},
            "stale_after_revoke": stale,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--revocations", type=int, default=30)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--no-wrk", action="store_true", help="closed loops from _loadgen.py even with wrk")
    parser.add_argument(
        "--chain",
        choices=("embedded", "devnet"),
        default="embedded",
        help="embedded: the in-process eth-tester EVM (default); devnet: a fresh anvil node from npm",
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite: a file in the state directory (default); postgresql: a fresh database (with --chain "
        "devnet: the scale-out set-up, adding workers_2_over_1 and the failover figures)",
    )
    parser.add_argument("--scale-connections", type=int, default=64, help="wrk connections (scale-out)")
    parser.add_argument("--no-failover", action="store_true", help="skip the failover scenario (scale-out)")
    args = parser.parse_args()
    if args.db == "postgresql" and args.chain != "devnet":
        parser.error("--db postgresql runs the scale-out set-up: it needs --chain devnet")
    with _database(args.db) as database_url:
        run(args, database_url)


@contextlib.contextmanager
def _database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    with _scale_bench.fresh_database() as url:
        yield url


def run(args: argparse.Namespace, database_url: str | None) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from backend.services.seed import demo_split, train_model

    cpus = sorted(os.sched_getaffinity(0))
    pin = len(cpus) >= 2 and shutil.which("taskset") is not None
    state = Path(tempfile.mkdtemp(prefix="knowledger-bench-"))
    t0 = time.perf_counter()
    log("training a small model on the demo world")
    split = demo_split(seed=0)
    artifact, _ = train_model(split, state / "model", epochs=3, seed=0)
    port = free_port()
    node = None
    if args.chain == "devnet":
        from backend.chain import AnvilNode

        node = AnvilNode(run_dir=state / "anvil").start()
        log(f"anvil devnet at {node.url}")
    proc = start_server(state, Path(artifact), port, pin, None if node is None else node.url, database_url)
    SERVER_PID[0] = proc.pid  # taskset execs uvicorn: the same process
    args.loadgen_cpu = cpus[1] if pin else None
    scale: dict[str, Any] | None = None
    failover: dict[str, Any] | None = None
    try:
        wait_healthy(proc, port)
        if pin:
            os.sched_setaffinity(0, {cpus[1]})
        bank_key = json.loads((state / "partner-keys.json").read_text())["bank"]
        log(f"server up on :{port}; creating {args.clients + args.revocations} consented learners")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
            users = make_users(api, split, args.clients + args.revocations)
            prime_s = prime(api, bank_key, users[: args.clients])
        raw = asyncio.run(measure(port, bank_key, users, args))
        raw["first_request_ms"] = round(1e3 * prime_s, 2)
        _stop(proc)
        if node is not None and database_url is not None:
            os.sched_setaffinity(0, set(cpus))  # the API processes get every CPU
            scale = _scale_bench.workers_ratio(
                state,
                Path(artifact),
                OPERATOR_KEY,
                node.url,
                database_url,
                bank_key,
                [u["pseudonym"] for u in users[: args.clients]],
                connections=args.scale_connections,
                duration=args.duration,
                warmup=args.warmup,
            )
            if not args.no_failover:
                failover = _scale_bench.failover(Path(artifact))
    finally:
        _stop(proc)
        if node is not None:
            node.stop()
        shutil.rmtree(state, ignore_errors=True)

    def figures(lat: dict[str, Any], sat: dict[str, Any]) -> dict[str, Any]:
        return {"p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "rps": sat["rps"]}

    out = {
        "recommend": figures(raw["recommend_lat"], raw["recommend_sat"]),
        "trivial": figures(raw["trivial_lat"], raw["trivial_sat"]),
        "ratio": round(raw["recommend_sat"]["rps"] / raw["trivial_sat"]["rps"], 3),
        "cpu_ms_per_recommendation": raw["recommend_sat"]["cpu_ms_per_request"],
        "revocation_to_refusal_ms": raw["revocation"]["all"]["p95_ms"],
        "workers_2_over_1": None if scale is None else scale["workers_2_over_1"],
        "failover_s": None if failover is None else failover["failover_s"],
        "failover_lost": None if failover is None else failover["lost"],
        "failover_doubled": None if failover is None else failover["doubled"],
        "goals": {
            "recommend_p99_ms_max": 10.0,
            "ratio_min": 0.5,
            "cpu_ms_per_recommendation_max": 1.0,
            "workers_2_over_1_min": 1.6,
            "failover_s_max": 10.0,
            "failover_lost": 0,
            "failover_doubled": 0,
        },
        "method": (
            "rps: closed loop, all connections sending back to back (capacity; wrk when installed). "
            "cpu_ms_per_recommendation: the server process's user + system CPU time during the measured "
            "recommend closed loop over the recommendations answered in it. p50/p99: open loop at "
            "offered_rps spread over the connections, latency from each request's scheduled send time. "
            "revocation_to_refusal_ms: p95 from sending the revoke call to the first 403, over learners "
            "revoked with no other traffic and under a background load (both also reported apart)."
        ),
        "config": {
            "clients": args.clients,
            "closed_loop_load": raw["recommend_sat"]["load"],
            "first_request_ms": raw["first_request_ms"],
            "offered_rps": raw["offered_rps"],
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "server": "uvicorn, 1 process (uvloop, httptools), "
            + ("SQLite (WAL)" if database_url is None else "PostgreSQL (a fresh database)"),
            "chain": "embedded eth-tester (in process)" if args.chain == "embedded" else "anvil devnet (npm)",
            "pinned": {"server_cpu": 0, "loadgen_cpu": cpus[1]} if pin else None,
            "cpus": len(cpus),
        },
        "saturation": {"recommend": raw["recommend_sat"], "trivial": raw["trivial_sat"]},
        "paced": {"recommend": raw["recommend_lat"], "trivial": raw["trivial_lat"]},
        "revocation": raw["revocation"],
        "scale": scale
        if scale is not None
        else {"skipped": "one process: the embedded chain lives in it (--chain devnet --db postgresql)"},
        "failover": failover,
        "total_s": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    main()
