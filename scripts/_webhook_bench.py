"""Webhook delivery latency under a steady conversion load, against a real ``knowledger serve`` process.

:func:`measure_webhook_delivery` registers a webhook endpoint for the bank (a receiver in this process, on
loopback), posts conversions at ``rate_hz`` for ``duration_s`` (``tests.faults.ConversionStream``), lets the
service settle them, and times each notification from its conversion's state change (the ``created`` time
the service writes into the notification, in the same transaction as the change) to its arrival at the
receiver. Both clocks are this machine's. ``webhook_delivery_p95_ms`` is the p95 over every notification
(``conversion.accepted`` and ``conversion.settled``); ``by_event`` splits it.

:func:`serve_and_measure` starts the service itself (the embedded chain, SQLite, the demo world);
``scripts/bench_webhooks.py`` prints its result. A caller that already runs a service (with
``KNOWLEDGER_WEBHOOK_ALLOW_HTTP=1``) passes it to :func:`measure_webhook_delivery` directly.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests import faults

#: The service settings the measurement needs (and the deliverer's round interval it reports under).
SERVICE_ENV = {
    "KNOWLEDGER_WEBHOOK_ALLOW_HTTP": "1",
    "KNOWLEDGER_WEBHOOK_ALLOW_PRIVATE": "1",
    "KNOWLEDGER_WEBHOOK_INTERVAL_S": "0.25",
}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class _Receiver:
    """Records each notification's id, type, ``created`` time and arrival time; always answers 204."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, str, float, float]] = []
        lock = threading.Lock()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.time()
                event = json.loads(body)
                created = dt.datetime.fromisoformat(event["created"].replace("Z", "+00:00")).timestamp()
                with lock:
                    arrivals.append((event["id"], event["type"], created, arrived))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", faults.free_port()), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, event_type: str) -> int:
        return sum(1 for _, t, _, _ in list(self.arrivals) if t == event_type)


def measure_webhook_delivery(
    served: faults.Served, *, rate_hz: float = 10.0, duration_s: float = 20.0, drain_timeout_s: float = 120.0
) -> dict[str, Any]:
    """Notifications of conversions posted at ``rate_hz`` for ``duration_s`` to ``served`` (see the module
    docstring); waits up to ``drain_timeout_s`` for the last ones. Returns the figures as plain JSON."""
    receiver = _Receiver()
    try:
        with served.client() as api:
            r = api.put("/api/v1/webhooks", json={"url": receiver.url}, headers=served.bank)
            r.raise_for_status()
        rec = faults.recommendation(served, faults.learners(served, 1)[0])
        with faults.ConversionStream(served, rec, rate_hz) as stream:
            time.sleep(duration_s)
        accepted = stream.accepted
        rows = faults.wait_settled(served, accepted, drain_timeout_s)
        settled = sum(1 for row in rows.values() if row.get("tx_hash"))
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and (
            receiver.count("conversion.accepted") < len(accepted)
            or receiver.count("conversion.settled") < settled
        ):
            time.sleep(0.1)
        arrivals = list(receiver.arrivals)
    finally:
        receiver.close()
    latencies = [max(0.0, arrived - created) for _, _, created, arrived in arrivals]
    by_type: dict[str, list[float]] = {}
    for _, kind, created, arrived in arrivals:
        by_type.setdefault(kind, []).append(max(0.0, arrived - created))
    repeats = sum(n - 1 for n in Counter(event_id for event_id, *_ in arrivals).values() if n > 1)
    return {
        "webhook_delivery_p50_ms": _ms(_pct(latencies, 0.50)),
        "webhook_delivery_p95_ms": _ms(_pct(latencies, 0.95)),
        "webhook_delivery_p99_ms": _ms(_pct(latencies, 0.99)),
        "webhook_delivery_max_ms": _ms(max(latencies, default=None) if latencies else None),
        "webhook_notifications": len(arrivals),
        "webhook_expected": len(accepted) + settled,
        "webhook_repeats": repeats,
        "by_event": {
            kind: {"count": len(v), "p50_ms": _ms(_pct(v, 0.5)), "p95_ms": _ms(_pct(v, 0.95))}
            for kind, v in sorted(by_type.items())
        },
        "conversions_posted": len(stream.posted),
        "conversions_accepted": len(accepted),
        "conversions_settled": settled,
        "rate_hz": rate_hz,
        "duration_s": duration_s,
    }


def serve_and_measure(
    workdir: Path, model: Path, *, rate_hz: float = 10.0, duration_s: float = 20.0
) -> dict[str, Any]:
    """Start ``knowledger serve`` (embedded chain, SQLite, demo world; settler, indexer and webhook
    deliverer every 0.25 s), measure, stop it."""
    served = faults.serve(workdir / "state", model, env=SERVICE_ENV)
    try:
        result = measure_webhook_delivery(served, rate_hz=rate_hz, duration_s=duration_s)
    finally:
        served.stop()
    result.update(
        chain="embedded",
        database="SQLite",
        webhook_interval_s=float(SERVICE_ENV["KNOWLEDGER_WEBHOOK_INTERVAL_S"]),
    )
    return result
