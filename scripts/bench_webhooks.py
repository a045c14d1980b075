"""Webhook delivery latency: ``python scripts/bench_webhooks.py`` prints one JSON object.

Starts ``knowledger serve`` (embedded chain, SQLite, the demo world) with a webhook endpoint for the bank on
a loopback receiver, posts conversions at a steady rate and reports ``webhook_delivery_p95_ms``: the time
from a conversion's state change (accepted, then settled) to the arrival of its notification, and its p50,
p99 and maximum, per event type too (``scripts/_webhook_bench.py``). ``webhook_repeats`` counts
notifications received more than once (at-least-once delivery allows it; without failures it is 0) and
``webhook_notifications`` should equal ``webhook_expected``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _webhook_bench import serve_and_measure  # noqa: E402

from backend.services.seed import demo_split, train_model  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench_webhooks] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="conversions per second (default 10)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="knowledger-webhooks-") as tmp:
        work = Path(tmp)
        log("training a model for the service")
        model = work / "model" / "hybrid"
        train_model(demo_split(seed=0), model, epochs=5, seed=0)
        log(f"conversions at {args.rate:g}/s for {args.duration:g} s")
        result = serve_and_measure(work, model, rate_hz=args.rate, duration_s=args.duration)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["python"] = platform.python_version()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
