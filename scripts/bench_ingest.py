"""The platform's data in, measured through the service as deployed: ``python scripts/bench_ingest.py`` prints
one JSON object.

``knowledger serve`` runs in its own process (the demo world seeded, a trained model) on SQLite, then on
PostgreSQL (a fresh database on 127.0.0.1:5432):

- ``batch_events_per_s.<database>``: behaviour events of one uploaded CSV file (``POST
  /api/v1/ingest/interactions``) per second of the job's reading, validation and writing (the job's own
  timings); ``batch_profiles_s.<database>`` is the time then spent bringing every affected learner's
  profile up to date, and ``batch_total_s.<database>`` upload to done;
- ``stream_event_to_profile_p95_ms``: a streamed event (``POST /api/v1/events``, one at a time) to its
  learner's updated profile: the answer comes after the profile is stored, so it is the request's time;
- ``promotion_failed_requests``: recommendation requests that failed while a new model version was promoted
  through the API and then rolled back from another process (``knowledger model rollback``), under load
  (``scripts/_promotion_bench.py``);
- ``webhook_delivery_p95_ms``: from a conversion's state change to its webhook's delivery, under a steady
  conversion load (``scripts/_webhook_bench.py``).

Goals: ``batch_events_per_s.postgresql`` ≥ 20,000, ``stream_event_to_profile_p95_ms`` ≤ 2,000,
``promotion_failed_requests`` 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.services.seed import demo_split, train_model  # noqa: E402
from scripts._promotion_bench import measure_promotion  # noqa: E402
from scripts._webhook_bench import serve_and_measure  # noqa: E402
from tests import faults  # noqa: E402

EVENTS = ("view", "view", "view", "purchase", "completion", "rating")


def log(msg: str) -> None:
    print(f"[bench_ingest] {msg}", file=sys.stderr, flush=True)


def events_csv(learners: list[str], items: list[str], n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = ["event_id,user_id,item_id,event,value,timestamp"]
    base = 1_790_000_000
    for i in range(n):
        event = rng.choice(EVENTS)
        value = (
            str(rng.randint(1, 5))
            if event == "rating"
            else (f"{rng.uniform(5, 80):.2f}" if event == "purchase" else "")
        )
        when = base + rng.randint(0, 8_000_000)
        lines.append(f"bench-{seed}-{i},{rng.choice(learners)},{rng.choice(items)},{event},{value},{when}")
    return ("\n".join(lines) + "\n").encode()


def batch(served: faults.Served, learners: list[str], items: list[str], n: int, seed: int) -> dict[str, Any]:
    body = events_csv(learners, items, n, seed)
    headers = {**served.operator, "content-type": "text/csv"}
    started = time.perf_counter()
    with httpx.Client(base_url=served.url, timeout=600) as api:
        job = api.post("/api/v1/ingest/interactions", content=body, headers=headers).json()
        while job["status"] not in ("done", "failed"):
            time.sleep(0.1)
            job = api.get(f"/api/v1/ingest/jobs/{job['id']}", headers=served.operator).json()
    total = time.perf_counter() - started
    if job["status"] != "done":
        raise SystemExit(f"the batch failed: {job['errors'][:3]}")
    t = job["timings"]
    write_s = t.get("reading", 0) + t.get("validating", 0) + t.get("writing", 0)
    return {
        "events": job["rows"],
        "inserted": job["inserted"],
        "events_per_s": round(job["rows"] / write_s, 1),
        "profiles_s": round(t.get("profiles", 0.0), 2),
        "profiles_updated": job["profiles_updated"],
        "total_s": round(total, 2),
        "timings": t,
    }


def stream(served: faults.Served, learners: list[str], items: list[str], n: int) -> dict[str, Any]:
    rng = random.Random(7)
    latencies = []
    with httpx.Client(base_url=served.url, timeout=60) as api:
        for i in range(n):
            event = {
                "event_id": f"stream-{i}",
                "user_id": rng.choice(learners),
                "item_id": rng.choice(items),
                "event": "completion",
                "timestamp": 1_798_000_000 + i,
            }
            t0 = time.perf_counter()
            r = api.post("/api/v1/events", json={"events": [event]}, headers=served.operator)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200 or r.json()["profiles_updated"] != 1:
                raise SystemExit(f"stream event {i}: {r.status_code} {r.text[:300]}")
    latencies.sort()
    return {
        "events": n,
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "max_ms": round(latencies[-1], 1),
    }


def _pg_database() -> tuple[str, Any]:
    import psycopg

    name = f"knowledger_bench_{int(time.time())}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the batch file")
    parser.add_argument("--stream", type=int, default=200, help="events streamed one by one")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {"batch_events_per_s": {}, "batch_profiles_s": {}, "batch_total_s": {}}
    with tempfile.TemporaryDirectory(prefix="knowledger-ingest-") as tmp:
        work = Path(tmp)
        log("training a model for the service")
        split = demo_split(seed=0)
        model = work / "model" / "hybrid"
        train_model(split, model, epochs=5, seed=0)
        learners = [str(u) for u in split.user_ids]
        items = [str(i) for i in split.train_dataset.items["item_id"]]
        databases: list[tuple[str, dict[str, str], Any]] = [("sqlite", {}, None)]
        if not args.skip_postgres:
            url, drop = _pg_database()
            databases.append(("postgresql", {"KNOWLEDGER_DATABASE_URL": url}, drop))
        for name, env, drop in databases:
            log(f"{name}: starting the service")
            served = faults.serve(work / name, model, chain={"KNOWLEDGER_CHAIN_TARGET": "embedded"}, env=env)
            try:
                log(f"{name}: a batch of {args.events:,} events")
                result = batch(served, learners, items, args.events, seed=1)
                out["batch_events_per_s"][name] = result["events_per_s"]
                out["batch_profiles_s"][name] = result["profiles_s"]
                out["batch_total_s"][name] = result["total_s"]
                out.setdefault("batch_detail", {})[name] = result
                if name == "sqlite":
                    log(f"stream: {args.stream} events one by one")
                    s = stream(served, learners, items, args.stream)
                    out["stream_event_to_profile_p95_ms"] = s["p95_ms"]
                    out["stream_detail"] = s
            finally:
                served.stop()
                if drop is not None:
                    drop()
        log("promotion and rollback under load")
        promotion = measure_promotion(work, model)
        out["promotion_failed_requests"] = promotion["promotion_failed_requests"]
        out["promotion_detail"] = promotion
        log("webhook delivery under a steady conversion load")
        webhooks = serve_and_measure(work / "webhooks", model)
        out["webhook_delivery_p95_ms"] = webhooks.get("webhook_delivery_p95_ms")
        out["webhook_detail"] = webhooks
    out["environment"] = {"python": platform.python_version(), "machine": platform.machine()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
