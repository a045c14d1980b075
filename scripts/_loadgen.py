"""A small HTTP/1.1 keep-alive load generator on asyncio (uvloop when installed).

Python HTTP clients spend about a millisecond of CPU per request, which would measure the client rather
than the server; this one pre-encodes each request and parses only the status line and Content-Length.
Closed loop (``saturate``) measures capacity; open loop (``paced``) measures latency at a stated offered
rate from each request's *scheduled* send time, so a slow server cannot hide its queueing delay
(coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


def request_bytes(method: str, path: str, headers: dict[str, str], body: object | None = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0

    def add(self, status: int, latency: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        lat = np.asarray(self.latencies) * 1e3
        n = len(lat)
        return {
            "requests": n,
            "rps": round(n / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 3) if n else float("nan"),
            "p99_ms": round(float(np.percentile(lat, 99)), 3) if n else float("nan"),
            "max_ms": round(float(lat.max()), 3) if n else float("nan"),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


async def open_connections(port: int, n: int) -> list[Connection]:
    return list(await asyncio.gather(*(Connection.open(port) for _ in range(n))))


async def saturate(
    conns: Sequence[Connection], requests: Sequence[bytes], warmup: float, duration: float
) -> Result:
    """Closed loop: every connection sends back-to-back; only the measured window counts."""
    result = Result()
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration

    async def client(i: int) -> None:
        raw = requests[i % len(requests)]
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                status, _ = await conns[i].send(raw)
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                return
            if t0 >= measure_from:
                result.add(status, time.perf_counter() - t0)

    await asyncio.gather(*(client(i) for i in range(len(conns))))
    result.elapsed = duration
    return result


async def paced(
    conns: Sequence[Connection],
    requests: Sequence[bytes],
    rate: float,
    warmup: float,
    duration: float,
    on_response: Callable[[int, int, bytes], None] | None = None,
) -> Result:
    """Open loop: connection ``i`` sends at ``rate / n`` per second on a fixed schedule (staggered);
    latency counts from the scheduled time, so time spent waiting behind a slow answer is included."""
    result = Result()
    n = len(conns)
    interval = n / rate
    start = time.perf_counter() + 0.05
    measure_from, stop_at = start + warmup, start + warmup + duration

    async def client(i: int) -> None:
        raw = requests[i % len(requests)]
        k = 0
        while True:
            scheduled = start + (i / n) * interval + k * interval
            if scheduled >= stop_at:
                return
            k += 1
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status, body = await conns[i].send(raw)
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                return
            if on_response is not None:
                on_response(i, status, body)
            if scheduled >= measure_from:
                result.add(status, time.perf_counter() - scheduled)

    await asyncio.gather(*(client(i) for i in range(n)))
    result.elapsed = duration
    return result
