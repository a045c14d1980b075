"""Promotion and rollback under load, against the service as deployed: ``measure_promotion`` (called by
``scripts/bench_ingest.py``).

``knowledger serve`` runs in its own process (embedded chain, SQLite, the demo world). A second model version
is registered from another process (``knowledger model import``). While consented learners' recommendation
requests run back to back from several connections, the new version is promoted through the operator API
(the serving process swaps it in between two requests), then rolled back from yet another process
(``knowledger model rollback``: the serving process follows the registry). Every answer is checked: its
status and the model version it names.

Returns ``promotion_failed_requests`` (non-200 answers and transport errors during both swaps; goal 0), the
number of requests, the versions seen in order, and how long the serving process took to follow the
rollback made elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.services.seed import demo_split, train_model  # noqa: E402
from tests import faults  # noqa: E402


def _cli(served: faults.Served, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWLEDGER_")}
    env.update({k: v for k, v in served.env.items() if k.startswith("KNOWLEDGER_")})
    done = subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"knowledger {' '.join(args)} failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def _load(
    served: faults.Served,
    learners: list[dict[str, Any]],
    stop: asyncio.Event,
    seen: list[tuple[float, int, str]],
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30.0) as api:
        i = 0
        while not stop.is_set():
            learner = learners[i % len(learners)]
            i += 1
            try:
                r = await api.post(
                    "/api/v1/recommendations",
                    json={"subject": learner["pseudonym"], "k": 3},
                    headers=served.bank,
                )
                version = r.json().get("model_version", "") if r.status_code == 200 else ""
                seen.append((time.monotonic(), r.status_code, str(version)))
            except httpx.HTTPError as exc:
                seen.append((time.monotonic(), 0, type(exc).__name__))


async def _scenario(served: faults.Served, learners: list[dict[str, Any]], candidate: str) -> dict[str, Any]:
    seen: list[tuple[float, int, str]] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(_load(served, learners, stop, seen)) for _ in range(8)]
    await asyncio.sleep(3)
    async with httpx.AsyncClient(base_url=served.url, timeout=120.0) as api:
        r = await api.post(
            f"/api/v1/models/versions/{candidate}/promote", json={"force": True}, headers=served.operator
        )
        r.raise_for_status()
        promoted = r.json()
    await asyncio.sleep(3)
    rolled = await asyncio.to_thread(_cli, served, "model", "rollback")
    rolled_at = time.monotonic()
    await asyncio.sleep(4)
    stop.set()
    await asyncio.gather(*clients)
    old = str(promoted["previous"])
    followed = next((t for t, code, v in seen if t >= rolled_at and code == 200 and v == old), None)
    order: list[str] = []
    for _, code, version in seen:
        if code == 200 and (not order or order[-1] != version):
            order.append(version)
    failed = [(code, v) for _, code, v in seen if code != 200]
    return {
        "promotion_failed_requests": len(failed),
        "failures": failed[:20],
        "requests": len(seen),
        "versions_in_order": order,
        "promoted": promoted["version"],
        "rolled_back_to": rolled["version"],
        "rollback_followed_s": None if followed is None else round(followed - rolled_at, 3),
    }


def measure_promotion(work: Path, model: Path) -> dict[str, Any]:
    """Promote (through the API) and roll back (from another process) under load; see the module."""
    candidate_dir = work / "model-candidate" / "hybrid"
    train_model(demo_split(seed=0), candidate_dir, epochs=3, seed=1)
    served = faults.serve(work / "promotion", model, env={"KNOWLEDGER_MODEL_FOLLOW_INTERVAL_S": "0.5"})
    try:
        candidate = _cli(served, "model", "import", str(candidate_dir))["version"]
        learners = faults.learners(served, 30)
        result = asyncio.run(_scenario(served, learners, candidate))
    finally:
        served.stop()
    result.update(chain="embedded", database="SQLite", clients=8, follow_interval_s=0.5)
    return result


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="knowledger-promotion-") as tmp:
        base = Path(tmp) / "model" / "hybrid"
        train_model(demo_split(seed=0), base, epochs=3, seed=0)
        print(json.dumps(measure_promotion(Path(tmp), base), indent=2))
