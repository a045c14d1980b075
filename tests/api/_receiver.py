"""A real webhook receiver for tests: an HTTP server on a free loopback port, in a thread, that records every
request it gets and answers as told: ``ok`` (200), ``fail`` (500), or ``slow`` (answers 200 after
``delay_s``, later than the sender waits)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._live import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived
    #: The status sent back (0: none the sender waited for).
    answered: int

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    def __init__(self, mode: str = "ok", delay_s: float = 2.0) -> None:
        self.mode = mode
        self.delay_s = delay_s
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                mode = receiver.mode
                status = 500 if mode == "fail" else 200
                with receiver._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    answered = 0 if mode == "slow" else status  # the sender stops waiting first
                    receiver.received.append(Received(headers, body, time.time(), answered))
                if mode == "slow":
                    time.sleep(receiver.delay_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/knowledger"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def events(self) -> list[dict[str, Any]]:
        """The bodies of the requests answered 2xx, in arrival order."""
        return [r.json for r in self.accepted()]
