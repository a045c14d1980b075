"""Integrity under faults and load, at full length: ``python scripts/bench_faults.py`` prints one JSON object.

Every scenario runs ``knowledger serve`` in its own process against a real anvil node (the embedded chain
lives inside the service's process, so it cannot be cut off or have its clock moved independently; the
scenarios say ``"chain": "anvil"``), as ``tests/faults.py`` sets up:

- ``outage_20s`` / ``outage_600s``: a conversion posted every 0.1 s while the chain is cut off for 20 s and
  for 10 minutes (a TCP proxy between the service and the node refuses and drops connections);
- ``clock_skew``: the same with a 20 s cut, the chain's clock 15 minutes ahead of the service's, then 15
  minutes behind (both summed);
- ``kill9``: the service killed with SIGKILL while it settles, then started again;
- ``pg_restart``: the service's PostgreSQL (a private cluster) stopped as a crash would stop it, and started
  again, while conversions are posted and settled;
- ``storm``: 100 learners revoking and granting again while partners ask for recommendations from 50
  connections (saturated, then paced at half the measured capacity), then the auditor's replay.

Goals: ``lost`` and ``doubled`` 0 everywhere, ``storm.served_after_revoke`` and ``storm.audit_violations``
0, ``storm.revocation_to_refusal_p95_ms`` ≤ 150. ``--short`` runs every scenario briefly (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.services.seed import demo_split, train_model  # noqa: E402
from tests import faults  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench_faults] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="every scenario briefly (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated scenarios to run")
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    outage_long = 30.0 if args.short else 600.0
    outage_short = 5.0 if args.short else 20.0
    out: dict[str, Any] = {"chain": "anvil", "database": "SQLite (pg_restart: PostgreSQL)"}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="knowledger-faults-") as tmp:
        work = Path(tmp)
        log("training a model for the service")
        model = work / "model" / "hybrid"
        train_model(demo_split(seed=0), model, epochs=5, seed=0)

        def run(name: str, fn: Any, **kwargs: Any) -> None:
            if only and name not in only:
                return
            log(f"{name} ...")
            t0 = time.perf_counter()
            sub = work / name
            sub.mkdir()
            out[name] = fn(sub, model, **kwargs)
            out[name]["seconds"] = round(time.perf_counter() - t0, 1)
            log(f"{name}: {json.dumps(out[name])}")

        run("outage_20s", faults.outage, down_s=outage_short, rate_hz=10.0)
        run("outage_600s", faults.outage, down_s=outage_long, rate_hz=10.0)
        if not only or "clock_skew" in only:
            ahead = faults.outage(_dir(work, "skew_ahead"), model, down_s=outage_short, skew_s=900)
            behind = faults.outage(_dir(work, "skew_behind"), model, down_s=outage_short, skew_s=-900)
            out["clock_skew"] = {
                "lost": ahead["lost"] + behind["lost"],
                "doubled": ahead["doubled"] + behind["doubled"],
                "rejected": ahead["rejected"] + behind["rejected"],
                "ahead_900s": ahead,
                "behind_900s": behind,
            }
            log(f"clock_skew: {json.dumps(out['clock_skew'])}")
        run("kill9", faults.kill9, conversions=60 if args.short else 300, batch=10)
        if faults.postgres_binaries():
            run("pg_restart", faults.pg_restart, down_s=3.0 if args.short else 20.0)
        else:
            out["pg_restart"] = {"skipped": "no PostgreSQL server binaries (initdb) on this machine"}
        run(
            "storm",
            faults.storm,
            learners_n=20 if args.short else 100,
            concurrency=10 if args.short else 50,
            requests=600 if args.short else 10_000,
            half_capacity=True,
            think_s=(1.0, 4.0) if args.short else (4.0, 12.0),
        )
    out["environment"] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "short": args.short,
    }
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=2))


def _dir(work: Path, name: str) -> Path:
    path = work / name
    path.mkdir()
    return path


if __name__ == "__main__":
    main()
