"""Where the CPU of one consent-gated recommendation goes: ``python scripts/profile_recommend.py``.

Builds the real service in this process (embedded chain, SQLite file, the demo world seeded, a small trained
model), creates consented learners through the API, then drives the ASGI app directly (no HTTP server, no
client: only the app's own work) with ``POST /api/v1/recommendations``, first unprofiled for the CPU time per
request, then under ``cProfile``. Prints the CPU per request and the functions with the most time, grouped
into the stages of the request (``--json-out`` writes the figures as JSON).

A new block every ``--block-every`` requests (0: never) stands for a busy chain, whose first consent read
after each block runs the interpreted EVM.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OPERATOR_KEY = "op_profile_" + secrets.token_hex(8)
COLD = False

#: Stages of a request, by the file a profiled function lives in (the first match wins).
STAGES = (
    ("consent (chain)", ("backend/chain/", "backend/services/gateway.py", "backend/services/consent_view.py",
                         "eth_tester", "eth/", "web3/", "eth_utils", "eth_abi", "trie", "rlp")),
    ("ranking + explanations", ("recommender/", "numpy", "scipy")),
    ("database", ("sqlalchemy", "sqlmodel", "sqlite3", "backend/services/serving_log.py",
                  "backend/core/db.py")),
    ("framework (FastAPI, Starlette, pydantic)", ("fastapi", "starlette", "pydantic", "anyio")),
)  # fmt: skip


def build(n_users: int, tmp: Path) -> tuple[Any, Any, str, list[str]]:
    from fastapi.testclient import TestClient

    from backend.container import Container
    from backend.core.config import Settings
    from backend.main import create_app, limit_native_threads
    from backend.services.seed import demo_split, train_model

    limit_native_threads()
    split = demo_split(seed=0)
    train_model(split, tmp / "model", epochs=3, seed=0)
    settings = Settings(
        state_dir=tmp / "state",
        model_path=tmp / "model",
        operator_key=OPERATOR_KEY,
        background_workers=False,
        seed_demo=False,
        _env_file=None,
    )
    container = Container.start(settings)
    seeded = container.seed(split, n_users=40)
    app = create_app(container=container)
    op = {"X-API-Key": OPERATOR_KEY}
    subjects = []
    with TestClient(app) as api:
        for i in range(n_users):
            r = api.post("/api/v1/users", json={"platform_user_id": f"prof-{i}"}, headers=op)
            r.raise_for_status()
            u = r.json()
            profile = split.profiles.profile(split.user_ids[i]).to_dict()
            courses = split.train_dataset.items["item_id"].tolist()[i % 50 : i % 50 + 4]
            body = {"profile": profile, "course_ids": courses, "product_ids": []}
            api.put(f"/api/v1/users/{u['id']}/profile", json=body, headers=op).raise_for_status()
            auth = {"Authorization": f"Bearer {u['token']}"}
            for purpose in ("profiling", "product_recommendation"):
                api.put(f"/api/v1/me/consents/bank/{purpose}", headers=auth).raise_for_status()
            subjects.append(u["pseudonym"])
    return container, app, seeded.partner_keys["bank"], subjects


async def drive(
    app: Any, container: Any, key: str, subjects: list[str], n: int, block_every: int, concurrency: int = 1
) -> int:
    """``n`` recommendation requests through the ASGI app, ``concurrency`` at a time (each of that many
    clients sends its next request when its previous answer came); returns how many were 200."""
    if concurrency > 1:
        share = [n // concurrency + (i < n % concurrency) for i in range(concurrency)]
        done = await asyncio.gather(
            *(
                drive(app, container, key, subjects[i::concurrency] or subjects, m, block_every)
                for i, m in enumerate(share)
            )
        )
        return sum(done)
    bodies = [json.dumps({"subject": s, "k": 5}).encode() for s in subjects]
    ok = 0
    for i in range(n):
        if block_every and i % block_every == 0:
            container.chain.mine(1)
        if COLD and hasattr(container.recommendations, "rankings"):
            container.recommendations.rankings.clear()
        body = bodies[i % len(bodies)]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/recommendations",
            "raw_path": b"/api/v1/recommendations",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-api-key", key.encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False

        async def receive(body: bytes = body) -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = [0]

        async def send(message: dict[str, Any], status: list[int] = status) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        await app(scope, receive, send)
        ok += status[0] == 200
    return ok


#: Inclusive time of these functions (file fragment, function name), against the whole app call.
PARTS = (
    ("the app (middleware, routing, dependencies, handler)", "fastapi/applications.py", "__call__"),
    ("  dependencies (auth, services, body)", "fastapi/dependencies/utils.py", "solve_dependencies"),
    ("  consent on chain (head + consent view)", "backend/services/gateway.py", "require_consent"),
    ("  database reads (the driver's cursor)", "backend/core/db.py", "first"),
    ("  ranking + explanations (cache misses only)", "backend/services/recommend.py", "_rank"),
    ("  serving log (queue the row, wait for the commit)", "backend/services/serving_log.py", "write"),
    ("  response encoding (pydantic-core)", "~", "<built-in method pydantic_core._pydantic_core.to_json>"),
    ("  response encoding (json)", "json/encoder.py", "encode"),
)  # fmt: skip


#: Built-in functions (no file), by a fragment of their name.
BUILTINS = (
    ("idle (waiting in epoll)", ("select.epoll",)),
    ("database", ("sqlite3", "psycopg")),
    ("ranking + explanations", ("numpy", "scipy", "ufunc", "ndarray")),
    ("framework (FastAPI, Starlette, pydantic)", ("pydantic",)),
    ("threads (locks, the serving log's handoff)", ("_thread.", "lock")),
)


def stage_of(filename: str, func: str = "") -> str:
    if filename == "~":
        for stage, marks in BUILTINS:
            if any(m in func for m in marks):
                return stage
    for stage, marks in STAGES:
        if any(m in filename for m in marks):
            return stage
    return "other (asyncio, stdlib, this app's glue)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--block-every", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once")
    parser.add_argument(
        "--threads",
        action="store_true",
        help="run each request in a worker thread and commit through the committer thread (as on a devnet), "
        "instead of on the event loop",
    )
    parser.add_argument(
        "--cold", action="store_true", help="empty the ranking cache before each request (every one a miss)"
    )
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    global COLD
    COLD = args.cold
    with tempfile.TemporaryDirectory(prefix="knowledger-profile-") as tmp:
        container, app, key, subjects = build(args.users, Path(tmp))
        if args.threads:
            container.gateway.in_process = False
            if hasattr(container.recommendations, "serving_log"):
                container.recommendations.serving_log.inline = False
        try:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(drive(app, container, key, subjects, 300, args.block_every))  # warm
            cpu0, wall0 = time.process_time(), time.perf_counter()
            ok = loop.run_until_complete(
                drive(app, container, key, subjects, args.requests, args.block_every, args.concurrency)
            )
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            if ok != args.requests:
                raise SystemExit(f"only {ok} of {args.requests} answers were 200")
            prof = cProfile.Profile()
            prof.enable()
            loop.run_until_complete(
                drive(app, container, key, subjects, args.requests, args.block_every, args.concurrency)
            )
            prof.disable()
            log = getattr(container.recommendations, "serving_log", None)
            rankings = getattr(container.recommendations, "rankings", None)
            facts = {
                "serving_log_rows_per_commit": None
                if log is None
                else round(log.rows / max(1, log.commits), 2),
                "ranking_cache_hit_share": None
                if rankings is None
                else round(rankings.hits / max(1, rankings.hits + rankings.misses), 3),
            }
        finally:
            container.close()
    stats = pstats.Stats(prof)
    by_stage: dict[str, float] = {}
    for (filename, _, func), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        stage = stage_of(filename, func)
        by_stage[stage] = by_stage.get(stage, 0.0) + tottime
    by_stage.pop("idle (waiting in epoll)", None)
    total = sum(by_stage.values())
    app_total = 0.0
    parts: dict[str, float] = {}
    for label, fragment, name in PARTS:
        spent = sum(
            v[3]
            for (filename, _, func), v in stats.stats.items()  # type: ignore[attr-defined]
            if fragment in filename and func == name
        )
        if label.startswith("the app"):
            app_total = spent
        parts[label] = round(1e3 * spent / args.requests, 3)
    out = {
        "cpu_ms_per_request": round(1e3 * cpu / args.requests, 3),
        "wall_ms_per_request": round(1e3 * wall / args.requests, 3),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "cold": args.cold,
        "threads": args.threads,
        **facts,
        "profiled_ms_per_request_by_part": parts,
        "profiled_app_ms_per_request": round(1e3 * app_total / args.requests, 3),
        "profiled_cpu_share_by_stage": {
            k: round(v / total, 3) for k, v in sorted(by_stage.items(), key=lambda kv: -kv[1])
        },
    }
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(args.top)
    buf2 = io.StringIO()
    pstats.Stats(prof, stream=buf2).sort_stats("tottime").print_stats(args.top)
    print(buf.getvalue(), file=sys.stderr)
    print(buf2.getvalue(), file=sys.stderr)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
