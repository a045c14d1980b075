"""Test helpers: a real uvicorn server on a free loopback port, and a TCP proxy that can cut the service off
from its chain node (a real network failure between two real processes, not a mock)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[httpx.Client]:
    """Serve ``app`` with uvicorn in a thread; yield an HTTP client bound to it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class ChainProxy:
    """Forwards TCP from a local port to ``target``. ``cut()`` refuses and drops connections;
    ``lose_next_send()`` forwards the next ``eth_sendRawTransaction`` but drops its answer and then cuts
    (the transaction is mined, the service never hears back); ``restore()`` heals."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "up"
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(64)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self.mode = "down"
        self._drop_all()

    def lose_next_send(self) -> None:
        self.mode = "lose_send"

    def restore(self) -> None:
        self.mode = "up"

    def close(self) -> None:
        self._closed = True
        self._drop_all()
        self._sock.close()

    def _drop_all(self) -> None:
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
            self._conns.clear()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.mode == "down":
                client.close()  # the node is unreachable
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        state = {"drop_reply": False}

        def close_both() -> None:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()

        def replies() -> None:
            try:
                while True:
                    data = upstream.recv(65536)
                    if not data or self.mode == "down":
                        break
                    if state["drop_reply"]:
                        self.mode = "down"  # mined, but the answer never arrives
                        break
                    client.sendall(data)
            except OSError:
                pass
            close_both()

        threading.Thread(target=replies, daemon=True).start()
        try:
            while True:
                data = client.recv(65536)
                if not data or self.mode == "down":
                    break
                if self.mode == "lose_send" and b"eth_sendRawTransaction" in data:
                    state["drop_reply"] = True
                upstream.sendall(data)
        except OSError:
            pass
        close_both()
