"""Fault scenarios against real processes: ``knowledger serve`` in its own process, a real anvil node
(behind a TCP proxy that can cut it off), a real PostgreSQL cluster the scenario starts itself.

Each scenario returns the figures ``scripts/bench_faults.py`` prints; the hostile tests
(``tests/api/test_hostile.py``) run the same scenarios, shorter, and assert on what was lost or doubled,
never on timings.

- :func:`outage`: conversions posted at a steady rate while the chain is cut off for ``down_s`` seconds
  (optionally with the chain's clock ahead of or behind the service's by ``skew_s``);
- :func:`kill9`: the service killed with SIGKILL while it settles, then started again;
- :func:`pg_restart`: the database restarted while conversions are posted and settled;
- :func:`storm`: learners revoking and granting again while partners ask for recommendations, then the
  auditor's replay of everything served, and of a tampered copy of the log;
- :func:`failover`: ``serve --workers 2`` on PostgreSQL, conversions posted at a steady rate, the process
  that leads the singleton workers killed with SIGKILL; another takes over and settles everything once;
- :func:`two_hosts`: two ``serve`` commands (two hosts: their own state directories) sharing one PostgreSQL
  database and one node; a revocation answered by one is refused by the other's very next request, a
  partner registered or a key rotated through one is known by the other at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from backend.chain import AnvilNode, connect_devnet
from backend.chain.deploy import Manifest
from backend.chain.ledger import LedgerClient
from backend.services.leadership import pid_of
from tests.api._live import ChainProxy, free_port

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_KEY = "op_faults_" + "5" * 24
SETTLED = {"settled", "final", "reversed", "reversal_pending"}
OPEN = {"pending", "submitting"}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------------------ the service
@dataclass
class Served:
    """A ``knowledger serve`` process."""

    proc: subprocess.Popen[str]
    port: int
    state: Path
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.env.get("KNOWLEDGER_DATABASE_URL") or f"sqlite:///{self.state / 'knowledger.db'}"

    @property
    def operator(self) -> dict[str, str]:
        key = self.env.get("KNOWLEDGER_OPERATOR_KEY") or (self.state / "operator.key").read_text().strip()
        return {"X-API-Key": key}

    @property
    def bank(self) -> dict[str, str]:
        keys = json.loads((self.state / "partner-keys.json").read_text(encoding="utf-8"))
        return {"X-API-Key": keys["bank"]}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


def serve(
    state: Path,
    model: Path,
    *,
    chain: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    timeout: float = 300.0,
    operator_key: str | None = OPERATOR_KEY,
    args: tuple[str, ...] = (),
    seed_demo: bool = True,
) -> Served:
    """Start ``knowledger serve`` (demo world seeded unless ``seed_demo`` is off) with ``args`` (e.g.
    ``("--workers", "2")``) and wait for its readiness line. Without ``operator_key`` the service
    generates one into its state directory."""
    port = port or free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("KNOWLEDGER_")}
    if operator_key is not None:
        full["KNOWLEDGER_OPERATOR_KEY"] = operator_key
    full.update(
        KNOWLEDGER_STATE_DIR=str(state),
        KNOWLEDGER_MODEL_PATH=str(model),
        KNOWLEDGER_SETTLE_INTERVAL_S="0.25",
        KNOWLEDGER_INDEX_INTERVAL_S="0.25",
        KNOWLEDGER_RPC_TIMEOUT_S="2",
        PYTHONUNBUFFERED="1",
    )
    full.update(chain or {})
    full.update(env or {})
    cmd = [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--seed-demo" if seed_demo else "--no-seed-demo", *args]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    served = Served(proc, port, state, full)
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            served.output.append(line.rstrip())
            if line.startswith("KnowLedger on"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError("knowledger serve did not start:\n" + "\n".join(served.output[-40:]))
    return served


def learners(served: Served, n: int, *, grant: bool = True) -> list[dict[str, Any]]:
    """``n`` seeded learners signed in (and, with ``grant``, consenting to the bank for recommendations)."""
    engine = create_engine(served.database_url)
    with engine.connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                text(
                    'SELECT platform_user_id FROM "user" WHERE platform_user_id IS NOT NULL '
                    "ORDER BY id LIMIT :n"
                ),
                {"n": n},
            )
        ]
    engine.dispose()
    out = []
    with served.client() as api:
        for pid in ids:
            found = api.get("/api/v1/users", params={"platform_user_id": pid}, headers=served.operator).json()
            token = api.post(f"/api/v1/users/{found['id']}/token", headers=served.operator).json()["token"]
            user = {"pseudonym": found["pseudonym"], "headers": {"Authorization": f"Bearer {token}"}}
            if grant:
                for purpose in ("profiling", "product_recommendation"):
                    r = api.put(f"/api/v1/me/consents/bank/{purpose}", headers=user["headers"])
                    r.raise_for_status()
            out.append(user)
    return out


def recommendation(served: Served, learner: dict[str, Any]) -> str:
    with served.client() as api:
        r = api.post("/api/v1/recommendations", json={"subject": learner["pseudonym"]}, headers=served.bank)
        r.raise_for_status()
        return str(r.json()["recommendation_id"])


@dataclass
class Posted:
    order_id: str
    status: int
    conversion_id: int | None
    at: float


class ConversionStream:
    """Posts a conversion every ``1 / rate_hz`` seconds from a thread, each with its own order id."""

    def __init__(self, served: Served, rec_id: str, rate_hz: float) -> None:
        self.served, self.rec_id, self.period = served, rec_id, 1.0 / rate_hz
        self.posted: list[Posted] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConversionStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        prefix = secrets.token_hex(4)
        with self.served.client(timeout=10) as api:
            n = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                body = {"recommendation_id": self.rec_id, "order_id": f"{prefix}-{n}", "value": 10_000 + n}
                try:
                    r = api.post("/api/v1/conversions", json=body, headers=self.served.bank)
                    cid = r.json().get("id") if r.status_code in (200, 202) else None
                    self.posted.append(Posted(body["order_id"], r.status_code, cid, time.monotonic()))
                except httpx.HTTPError:
                    self.posted.append(Posted(body["order_id"], 0, None, time.monotonic()))
                n += 1
                next_at += self.period
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    @property
    def accepted(self) -> list[int]:
        return [p.conversion_id for p in self.posted if p.status == 202 and p.conversion_id is not None]


def wait_settled(served: Served, ids: list[int], timeout: float) -> dict[int, dict[str, Any]]:
    """Each conversion's row once none of them is still in the outbox (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    rows: dict[int, dict[str, Any]] = {}
    with served.client() as api:
        while True:
            rows = {i: api.get(f"/api/v1/conversions/{i}", headers=served.bank).json() for i in ids}
            if not any(r["state"] in OPEN for r in rows.values()) or time.monotonic() > deadline:
                return rows
            time.sleep(0.5)


def chain_counts(rpc_url: str, manifest: Path, agreement_id: int) -> Counter[int]:
    """How many times the ledger recorded each conversion id (read from the node, not the service)."""
    client = connect_devnet(rpc_url)
    m = Manifest.load(manifest)
    ledger = LedgerClient(client, m.address_of("SettlementLedger"), from_block=0)
    events = ledger.conversions_recorded(agreement_id)
    client.close()
    return Counter(c.data.id for e in events for c in e.conversions)


def _outcome(
    served: Served, accepted: list[int], rpc_url: str, manifest: Path, timeout: float
) -> dict[str, Any]:
    rows = wait_settled(served, accepted, timeout)
    agreement = next(iter(rows.values()))["agreement_id"] if rows else 0
    counts = chain_counts(rpc_url, manifest, agreement) if rows else Counter()
    lost = [i for i in accepted if counts[i] == 0]
    doubled = [i for i in accepted if counts[i] > 1]
    rejected = {i: rows[i]["error"] for i in accepted if rows[i]["state"] == "rejected"}
    return {
        "accepted": len(accepted),
        "settled": sum(1 for i in accepted if rows[i]["state"] in SETTLED),
        "lost": len(lost),
        "doubled": len(doubled),
        "rejected": len(rejected),
        "rejected_reasons": sorted(set(rejected.values()))[:5],
        "still_open": sum(1 for r in rows.values() if r["state"] in OPEN),
    }


@contextlib.contextmanager
def anvil(workdir: Path, *, skew_s: int = 0) -> Iterator[AnvilNode]:
    """An anvil node; with ``skew_s`` its clock runs that many seconds ahead of (or behind) this machine's."""
    extra: list[str] = []
    if skew_s:
        extra += ["--timestamp", str(int(time.time()) + skew_s)]
    node = AnvilNode(run_dir=workdir / "anvil", extra_args=extra).start()
    try:
        yield node
    finally:
        node.stop()


def _devnet_env(url: str, state: Path) -> dict[str, str]:
    return {
        "KNOWLEDGER_CHAIN_TARGET": "devnet",
        "KNOWLEDGER_RPC_URL": url,
        "KNOWLEDGER_MANIFEST_PATH": str(state / "manifest.json"),
    }


# ------------------------------------------------------------------------------------------ scenarios
def outage(
    workdir: Path,
    model: Path,
    *,
    down_s: float,
    rate_hz: float = 10.0,
    skew_s: int = 0,
    before_s: float = 1.5,
    after_s: float = 1.5,
) -> dict[str, Any]:
    """Conversions at ``rate_hz`` while the chain is cut off for ``down_s`` seconds."""
    state = workdir / "state"
    with anvil(workdir, skew_s=skew_s) as node:
        proxy = ChainProxy("127.0.0.1", node.port)
        served = serve(state, model, chain=_devnet_env(proxy.url, state))
        try:
            rec = recommendation(served, learners(served, 1)[0])
            with ConversionStream(served, rec, rate_hz) as stream:
                time.sleep(before_s)
                proxy.cut()
                time.sleep(down_s)
                proxy.restore()
                time.sleep(after_s)
            result = _outcome(served, stream.accepted, node.url, state / "manifest.json", 120 + down_s)
            result["posted"] = len(stream.posted)
            result["refused"] = sum(1 for p in stream.posted if p.status != 202)
            result["down_s"] = down_s
            result["skew_s"] = skew_s
            return result
        finally:
            served.stop()
            proxy.close()


def kill9(workdir: Path, model: Path, *, conversions: int = 120, batch: int = 10) -> dict[str, Any]:
    """Conversions settled in small batches; the service is killed (SIGKILL) while it settles, then started
    again on the same state and chain."""
    state = workdir / "state"
    env = {"KNOWLEDGER_SETTLE_BATCH_SIZE": str(batch), "KNOWLEDGER_SETTLE_INTERVAL_S": "0.05"}
    with anvil(workdir) as node:
        chain = _devnet_env(node.url, state)
        served = serve(state, model, chain=chain, env=env)
        try:
            rec = recommendation(served, learners(served, 1)[0])
            accepted = []
            with served.client() as api:
                for n in range(conversions):
                    body = {"recommendation_id": rec, "order_id": f"k9-{n}", "value": 20_000 + n}
                    r = api.post("/api/v1/conversions", json=body, headers=served.bank)
                    if r.status_code == 202:
                        accepted.append(int(r.json()["id"]))
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # kill as soon as settling is under way
                    states = Counter(
                        api.get(f"/api/v1/conversions/{i}", headers=served.bank).json()["state"]
                        for i in accepted[:: max(1, batch // 2)]
                    )
                    if states["settled"] and states["pending"] + states["submitting"]:
                        break
                    time.sleep(0.05)
            served.kill9()
            served = serve(state, model, chain=chain, env=env)
            result = _outcome(served, accepted, node.url, state / "manifest.json", 120)
            result["restarted"] = True
            return result
        finally:
            served.stop()


def postgres_binaries() -> bool:
    return bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


@dataclass
class PgCluster:
    """A private PostgreSQL cluster on its own port (so restarting it touches nobody else's)."""

    data: Path
    port: int
    bin: Path

    @classmethod
    def create(cls) -> PgCluster:
        """A new cluster in its own directory (outside the test's private temporary directory: as root, the
        server runs as ``postgres``, which must reach it)."""
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("no PostgreSQL server binaries (initdb) under /usr/lib/postgresql")
        home = Path(tempfile.mkdtemp(prefix="knowledger-pg-"))
        home.chmod(0o755)
        data = home / "data"
        data.mkdir(mode=0o700)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(data, "postgres", "postgres")
        cluster = cls(data, free_port(), found[-1].parent)
        cluster._run("initdb", "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8")
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")

    def remove(self) -> None:
        shutil.rmtree(self.data.parent, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data / "server.log"),
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")


def pg_restart(workdir: Path, model: Path, *, down_s: float = 3.0, rate_hz: float = 10.0) -> dict[str, Any]:
    """Conversions posted and settled while the service's PostgreSQL goes down (immediate stop, as a crash
    would) for ``down_s`` seconds and comes back."""
    state = workdir / "state"
    pg = PgCluster.create()
    pg.start()
    try:
        with anvil(workdir) as node:
            served = serve(
                state, model, chain=_devnet_env(node.url, state), env={"KNOWLEDGER_DATABASE_URL": pg.url}
            )
            try:
                rec = recommendation(served, learners(served, 1)[0])
                with ConversionStream(served, rec, rate_hz) as stream:
                    time.sleep(1.5)
                    pg.stop("immediate")
                    time.sleep(down_s)
                    pg.start()
                    time.sleep(2.0)
                result = _outcome(served, stream.accepted, node.url, state / "manifest.json", 120)
                result["posted"] = len(stream.posted)
                result["refused"] = sum(1 for p in stream.posted if p.status != 202)
                result["server_errors"] = sum(1 for p in stream.posted if p.status >= 500 and p.status != 503)
                return result
            finally:
                served.stop()
    finally:
        with contextlib.suppress(Exception):
            pg.stop("immediate")
        pg.remove()


def storm(
    workdir: Path,
    model: Path,
    *,
    learners_n: int = 20,
    concurrency: int = 10,
    requests: int = 600,
    seed: int = 0,
    half_capacity: bool = False,
    think_s: tuple[float, float] = (0.05, 0.3),
) -> dict[str, Any]:
    """Learners revoke and grant again while partners ask for their recommendations; then the auditor's
    replay of everything served, and of a copy of the log with one answer moved to a block where its
    consent was revoked (it must be caught).

    Each learner waits ``think_s`` (a uniform range, seconds) before revoking and again before granting.
    Partners ask back to back from ``concurrency`` connections (the service saturated). With
    ``half_capacity`` that saturated run measures the capacity, and a second run, paced at half of it (open
    loop), gives ``revocation_to_refusal_p95_ms``; both runs must serve nothing after a revocation."""
    state = workdir / "state"
    with anvil(workdir) as node:
        served = serve(state, model, chain=_devnet_env(node.url, state))
        try:
            people = learners(served, learners_n)
            rng = random.Random(seed)
            result = asyncio.run(_storm(served, people, concurrency, requests, rng, think_s=think_s))
            if half_capacity:
                saturated = result
                rate = saturated["rps"] / 2
                result = asyncio.run(
                    _storm(served, people, concurrency, requests, rng, rate_hz=rate, think_s=think_s)
                )
                result["capacity_rps"] = saturated["rps"]
                result["saturation"] = {
                    k: saturated[k]
                    for k in ("requests", "served_after_revoke", "revocation_to_refusal_p95_ms")
                }
                result["served_after_revoke"] += saturated["served_after_revoke"]
            result.update(_audit(served, node.url, workdir))
            return result
        finally:
            served.stop()


async def _storm(
    served: Served,
    people: list[dict[str, Any]],
    concurrency: int,
    requests: int,
    rng: random.Random,
    rate_hz: float | None = None,
    think_s: tuple[float, float] = (0.05, 0.3),
) -> dict[str, Any]:
    revoked_since: dict[str, float | None] = {p["pseudonym"]: None for p in people}
    windows: list[tuple[str, float, float]] = []  # (learner, revoke answered, grant sent)
    served_log: list[tuple[str, float, float, int]] = []  # (learner, sent, answered, status)
    to_refusal: list[float] = []
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=served.url, timeout=30, limits=limits) as api:

        async def ask(p: dict[str, Any]) -> tuple[float, int]:
            sent = time.monotonic()
            r = await api.post(
                "/api/v1/recommendations", json={"subject": p["pseudonym"]}, headers=served.bank
            )
            received = time.monotonic()
            served_log.append((p["pseudonym"], sent, received, r.status_code))
            return received, r.status_code

        started = time.monotonic()

        async def partner(i: int) -> None:
            nonlocal remaining
            n = 0
            while remaining > 0:
                remaining -= 1
                if rate_hz:  # open loop: this connection's share of the rate, on schedule
                    due = started + (i + n * concurrency) / rate_hz
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                n += 1
                await ask(rng.choice(people))

        async def learner(p: dict[str, Any]) -> None:
            while remaining > 0:
                await asyncio.sleep(rng.uniform(*think_s))
                if remaining <= 0:
                    break
                r = await api.delete("/api/v1/me/consents/bank/product_recommendation", headers=p["headers"])
                answered = time.monotonic()
                if r.status_code != 200:
                    continue
                revoked_since[p["pseudonym"]] = answered
                received, status = await ask(p)  # the very next request for this learner
                if status == 403:
                    to_refusal.append(received - answered)
                await asyncio.sleep(rng.uniform(*think_s))
                grant_sent = time.monotonic()
                windows.append((p["pseudonym"], answered, grant_sent))
                revoked_since[p["pseudonym"]] = None
                await api.put("/api/v1/me/consents/bank/product_recommendation", headers=p["headers"])

        await asyncio.gather(*(partner(i) for i in range(concurrency)), *(learner(p) for p in people))
        elapsed = time.monotonic() - started
    for who, since in revoked_since.items():
        if since is not None:
            windows.append((who, since, float("inf")))
    # A recommendation asked after the revoke was answered, and answered before the learner asked to grant
    # again, can only be a refusal: the service saw the revocation and could not yet have seen a new grant.
    after_revoke = sum(
        1
        for who, sent, received, status in served_log
        if status == 200 and any(w == who and start <= sent and received < end for w, start, end in windows)
    )
    p95 = _pct(to_refusal, 0.95)
    return {
        "requests": len(served_log),
        "rps": round(len(served_log) / elapsed, 1),
        "offered_rps": None if rate_hz is None else round(rate_hz, 1),
        "served": sum(1 for *_, s in served_log if s == 200),
        "refused": sum(1 for *_, s in served_log if s == 403),
        "errors": sum(1 for *_, s in served_log if s >= 500),
        "revocations": len(windows),
        "served_after_revoke": after_revoke,
        "revocation_to_refusal_p95_ms": None if p95 is None else round(p95 * 1000, 1),
    }


def _audit(served: Served, rpc_url: str, workdir: Path) -> dict[str, Any]:
    """Export the serving log, replay it; then replay a copy with one answer moved to a revoked block."""
    log = workdir / "serving-log.jsonl"
    cli = [sys.executable, "-m", "backend.cli"]
    subprocess.run(
        [*cli, "export-log", "--database", served.database_url, "--out", str(log)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    clean = subprocess.run(
        [*cli, "audit", "--log", str(log), "--rpc-url", rpc_url],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary = json.loads(clean.stdout.strip().splitlines()[-1]) if clean.stdout.strip() else {}
    tampered_id, tampered = _tamper(log, served)
    bad = subprocess.run(
        [*cli, "audit", "--log", str(tampered), "--rpc-url", rpc_url],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    flagged = [line for line in bad.stdout.splitlines() if line.startswith("violation:")]
    return {
        "audit_exit": clean.returncode,
        # what the audit said when it could not run (exit 2), for the reader of the benchmark's JSON
        "audit_error": clean.stderr.strip().splitlines()[-1]
        if clean.returncode == 2 and clean.stderr.strip()
        else None,
        "audit_answers": summary.get("answers"),
        "audit_violations": summary.get("violations"),
        "tampered_exit": bad.returncode,
        "tampered_caught": len(flagged) == 1 and tampered_id in flagged[0],
    }


def _tamper(log: Path, served: Served) -> tuple[str, Path]:
    """A copy of ``log`` where one served recommendation names a block at which its learner had just revoked
    (a block of a revocation from the consent history)."""
    engine = create_engine(served.database_url)
    with engine.connect() as conn:
        revoked = {
            pseudonym: block
            for pseudonym, block in conn.execute(
                text("SELECT pseudonym, block_number FROM consent_event WHERE action = 'revoke' ORDER BY id")
            )
        }
    engine.dispose()
    lines = log.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines[1:], 1):
        row = json.loads(line)
        if row["subject"] in revoked:
            row["block"] = revoked[row["subject"]]
            lines[i] = json.dumps(row)
            out = log.with_name("serving-log-tampered.jsonl")
            out.write_text("\n".join(lines) + "\n", encoding="utf-8")
            return str(row["id"]), out
    raise RuntimeError("no served recommendation for a learner who revoked: nothing to tamper with")


def is_port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# ------------------------------------------------------------------------------------------ many processes
def health(served: Served) -> dict[str, Any]:
    """``/health`` from whichever process answers a new connection."""
    return dict(httpx.get(served.url + "/health", timeout=30).json())


def processes_answering(served: Served, want: int, timeout: float = 60.0) -> set[str]:
    """The processes seen answering ``/health`` (concurrent new connections) until ``want`` of them did, or
    ``timeout``."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout

    async def burst() -> None:
        async def one() -> None:
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as api:
                seen.add((await api.get("/health")).json()["leadership"]["process"])

        await asyncio.gather(*(one() for _ in range(8)))

    while len(seen) < want and time.monotonic() < deadline:
        asyncio.run(burst())
    return seen


def connections_per_process(served: Served, connections: int = 64) -> dict[str, int]:
    """How many of ``connections`` opened at once (as a load balancer or a load generator opens its pool)
    each process serves: every connection asks ``/health`` which process answers it."""

    async def spread() -> list[str]:
        clients = [httpx.AsyncClient(base_url=served.url, timeout=60) for _ in range(connections)]
        try:
            answers = await asyncio.gather(*(c.get("/health") for c in clients))
            return [str(a.json()["leadership"]["process"]) for a in answers]
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    return dict(Counter(asyncio.run(spread())))


def wait_leader(served: Served, *, other_than: str | None = None, timeout: float = 60.0) -> str | None:
    """The leading process once one (other than ``other_than``) leads, or None at ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            leader = health(served)["leadership"]["leader"]
        except (httpx.HTTPError, ValueError, KeyError):
            leader = None
        if leader is not None and leader != other_than:
            return str(leader)
        time.sleep(0.05)
    return None


def failover(
    workdir: Path,
    model: Path,
    database_url: str,
    *,
    workers: int = 2,
    rate_hz: float = 10.0,
    before_s: float = 3.0,
    after_s: float = 3.0,
) -> dict[str, Any]:
    """``serve --workers`` on ``database_url`` (and a second ``serve`` on its state directory, which must be
    refused); conversions at ``rate_hz``; once settling is under way the leading process is killed with
    SIGKILL. ``failover_s``: from the kill until ``/health`` names another
    leader. Lost: accepted (202) but never recorded by the ledger; doubled: recorded twice (both read from
    the node's events, not the service's database)."""
    state = workdir / "state"
    with anvil(workdir) as node:
        served = serve(
            state,
            model,
            chain=_devnet_env(node.url, state),
            env={"KNOWLEDGER_DATABASE_URL": database_url, "KNOWLEDGER_LEADER_POLL_S": "0.5"},
            args=("--workers", str(workers)),
        )
        try:
            answering = processes_answering(served, workers)
            spread = connections_per_process(served)
            second = subprocess.run(  # another `serve` on the same state directory: refused, naming this one
                [sys.executable, "-m", "backend.cli", "serve", "--port", str(free_port())],
                cwd=ROOT, env=served.env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            leader = wait_leader(served)
            rec = recommendation(served, learners(served, 1)[0])
            with ConversionStream(served, rec, rate_hz) as stream:
                time.sleep(before_s)
                leader = wait_leader(served)
                assert leader is not None, "no process leads"
                killed_at = time.monotonic()
                os.kill(pid_of(leader), signal.SIGKILL)
                successor = wait_leader(served, other_than=leader)
                failover_s = time.monotonic() - killed_at if successor is not None else None
                time.sleep(after_s)
            result = _outcome(served, stream.accepted, node.url, state / "manifest.json", 120)
            after = processes_answering(served, workers, timeout=120)  # the killed one was started again
            result.update(
                posted=len(stream.posted),
                refused=sum(1 for p in stream.posted if p.status != 202),
                processes_answering=len(answering),
                connections_per_process=sorted(spread.values()),
                second_serve_refused=second.returncode == 2
                and f"in use by process {served.proc.pid}" in second.stderr,
                processes_after=len(after - {leader}),
                killed=leader,
                successor=successor,
                failover_s=None if failover_s is None else round(failover_s, 3),
            )
            return result
        finally:
            served.stop()


def two_hosts(workdir: Path, model: Path, database_url: str, *, rounds: int = 4) -> dict[str, Any]:
    """Two ``serve`` commands with their own state directories on one database and one node: the first
    deploys, seeds and generates the operator key; the second finds the deployment and the operator key in
    the database. Learners revoke through one host; the other's very next request for them must be refused.
    A partner registered through one host is known by the other at once; a key rotated through one is
    refused by the other at once."""
    with anvil(workdir) as node:
        a_state, b_state = workdir / "host-a", workdir / "host-b"
        env = {"KNOWLEDGER_DATABASE_URL": database_url}
        a = serve(a_state, model, chain=_devnet_env(node.url, a_state), env=env, operator_key=None)
        try:
            b = serve(
                b_state,
                model,
                chain=_devnet_env(node.url, b_state),
                env=env,
                operator_key=None,
                seed_demo=False,
            )
        except BaseException:
            a.stop()
            raise
        try:
            return _two_hosts(a, b, rounds)
        finally:
            b.stop()
            a.stop()


def _two_hosts(a: Served, b: Served, rounds: int) -> dict[str, Any]:
    operator, bank = a.operator, a.bank  # the second host has neither file: it uses what the database holds
    people = learners(a, rounds)
    out: dict[str, Any] = {
        "second_host_manifest_file": (b.state / "manifest.json").exists(),
        "second_host_operator_key_file": (b.state / "operator.key").exists(),
        "leaders": sorted({str(health(x)["leadership"]["leader"]) for x in (a, b)}),
        "served_before_revoke": 0,
        "refused_after_revoke": 0,
        "served_after_grant": 0,
    }
    for i, learner in enumerate(people):
        here, there = (a, b) if i % 2 == 0 else (b, a)  # revoke on one host, ask the other
        body = {"subject": learner["pseudonym"]}
        with here.client() as revoker, there.client() as asker:

            def status(api: httpx.Client) -> int:
                return api.post("/api/v1/recommendations", json=body, headers=bank).status_code  # noqa: B023

            out["served_before_revoke"] += status(asker) == 200
            r = revoker.delete("/api/v1/me/consents/bank/product_recommendation", headers=learner["headers"])
            r.raise_for_status()
            out["refused_after_revoke"] += status(asker) == 403  # the very next request, other host
            g = asker.put("/api/v1/me/consents/bank/product_recommendation", headers=learner["headers"])
            g.raise_for_status()
            out["served_after_grant"] += status(revoker) == 200
    with a.client() as on_a, b.client() as on_b:
        body = {
            "id": "credit-union-" + secrets.token_hex(3),
            "name": "Credit Union",
            "address": "0x" + secrets.token_hex(20),
            "notice_text": "We use your learning profile to suggest savings products.",
        }
        created = on_a.post("/api/v1/partners", json=body, headers=operator)
        created.raise_for_status()
        key = {"X-API-Key": created.json()["api_key"]}
        out["new_partner_on_other_host"] = on_b.get("/api/v1/ledger/agreements", headers=key).status_code
        rotated = on_b.post(f"/api/v1/partners/{body['id']}/api-key", headers=operator)
        rotated.raise_for_status()
        out["old_key_on_other_host"] = on_a.get("/api/v1/ledger/agreements", headers=key).status_code
        new_key = {"X-API-Key": rotated.json()["api_key"]}
        out["new_key_on_other_host"] = on_a.get("/api/v1/ledger/agreements", headers=new_key).status_code
    out["learners"] = len(people)
    return out
