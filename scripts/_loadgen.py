"""A minimal asyncio HTTP/1.1 keep-alive load generator for ``bench_api.py``.

A general-purpose Python HTTP client (httpx) spends about a millisecond of CPU per request, which would
measure the client rather than the server. Here each request is pre-encoded bytes written to a kept-alive
``asyncio.open_connection`` stream; the response is read as a status line, headers (only ``Content-Length``
is looked at) and exactly that many body bytes (chunked bodies are not supported: uvicorn's JSON responses
carry a length).

- ``saturate``: closed loop, every connection sends back to back; requests completing inside the window
  count (capacity and latency under saturation).
- ``paced``: open loop, connection ``i`` of ``n`` sends on its own fixed schedule (staggered) so that the
  total offered rate is ``rate``; latency is measured from the scheduled send time, so a slow response
  that delays the next send is counted (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

now = time.perf_counter


def request_bytes(method: str, path: str, headers: dict[str, str], body: Any = None) -> bytes:
    """A request's bytes, built once and written as is for every send (``body`` is sent as JSON)."""
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append("Content-Type: application/json")
    if body is not None or method in ("POST", "PUT", "PATCH", "DELETE"):
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class Connection:
    """One kept-alive connection; one request in flight at a time. Like a pooled client, a connection left
    idle for ``IDLE_EXPIRY_S`` (under uvicorn's 5 s keep-alive timeout) is reopened before the next send."""

    IDLE_EXPIRY_S = 4.0

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.port = port
        self.last = now()

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, host, port)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Write ``raw``; return (status, body)."""
        if now() - self.last > self.IDLE_EXPIRY_S:
            self.writer.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])  # b"HTTP/1.1 200 OK\r\n"
        lower = head.lower()
        i = lower.find(b"\r\ncontent-length:")
        length = 0
        if i >= 0:
            length = int(lower[i + 17 : lower.index(b"\r\n", i + 2)])
        elif b"\r\ntransfer-encoding:" in lower:
            raise ValueError("chunked responses are not supported")
        body = await self.reader.readexactly(length) if length else b""
        self.last = now()
        return status, body

    def close(self) -> None:
        self.writer.close()


async def open_connections(port: int, n: int, host: str = "127.0.0.1") -> list[Connection]:
    conns: list[Connection] = []
    while len(conns) < n:  # in bursts of 50: the listen backlog is finite
        k = min(50, n - len(conns))
        conns += await asyncio.gather(*(Connection.open(port, host) for _ in range(k)))
    return conns


def _pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


@dataclass
class Result:
    window_s: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    def record(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        n = len(lat)

        def ms(x: float) -> float:
            return round(x * 1e3, 3)

        return {
            "requests": n,
            "rps": round(n / self.window_s, 1) if self.window_s > 0 else math.nan,
            "p50_ms": ms(_pct(lat, 50)),
            "p99_ms": ms(_pct(lat, 99)),
            "max_ms": ms(lat[-1]) if lat else math.nan,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


async def saturate(
    conns: Sequence[Connection], requests: Sequence[bytes], warmup: float, duration: float
) -> Result:
    """Closed loop: connection ``i`` sends ``requests[i % len(requests)]`` back to back; responses received
    in [warm-up end, warm-up end + duration) count, rps = count / duration."""
    result = Result(duration)
    t_measure = now() + warmup
    t_end = t_measure + duration

    async def client(conn: Connection, raw: bytes) -> None:
        while (sent := now()) < t_end:
            try:
                status, _ = await conn.send(raw)
            except Exception:
                result.errors += 1
                await asyncio.sleep(0.01)
                continue
            done = now()
            if t_measure <= done < t_end:
                result.record(status, done - sent)

    await asyncio.gather(*(client(c, requests[i % len(requests)]) for i, c in enumerate(conns)))
    return result


async def paced(
    conns: Sequence[Connection], requests: Sequence[bytes], rate: float, warmup: float, duration: float
) -> Result:
    """Open loop at ``rate`` requests/s in total: connection ``i`` of ``n`` sends at
    ``t0 + (i/n + k) * n/rate``. Latency runs from the scheduled time (or from the actual send when the
    event loop's ~1 ms timer woke a little early: never the flattering one). Requests scheduled in
    [warm-up end, warm-up end + duration) count."""
    n = len(conns)
    period = n / rate
    result = Result(duration)
    t0 = now() + 0.02
    t_measure = t0 + warmup
    t_end = t_measure + duration

    async def client(i: int, conn: Connection, raw: bytes) -> None:
        k = 0
        while (sched := t0 + (i / n + k) * period) < t_end:
            k += 1
            delay = sched - now()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = now()
            try:
                status, _ = await conn.send(raw)
            except Exception:
                result.errors += 1
                continue
            if sched >= t_measure:
                result.record(status, now() - min(sched, sent))

    await asyncio.gather(*(client(i, c, requests[i % len(requests)]) for i, c in enumerate(conns)))
    return result
