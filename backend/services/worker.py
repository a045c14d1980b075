"""A background worker: ``run_once`` is one round (tests and the operator call it directly); ``start`` runs
rounds in a daemon thread every ``interval`` seconds, keeping the loop alive across failures; ``stop`` ends
the loop (a worker can be started again afterwards: a process that loses the leadership stops its singleton
workers, and starts them again if it wins it back).

``round`` is one round under the worker's ``round_guard``: where several processes share a database, the
guard makes rounds of the same worker wait for each other, wherever they run (see
:mod:`backend.services.leadership`). The loop's rounds and the operator's on-demand rounds go through it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

log = logging.getLogger("knowledger")
R = TypeVar("R")


def _no_guard(_name: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


class PeriodicWorker(Generic[R]):
    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        #: Held around each :meth:`round` (given the worker's name); the default guards nothing.
        self.round_guard: Callable[[str], AbstractContextManager[None]] = _no_guard

    def run_once(self) -> R:  # pragma: no cover - overridden
        raise NotImplementedError

    def round(self) -> R:
        """One round under the worker's round guard."""
        with self.round_guard(self.name):
            return self.run_once()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, interval: float) -> None:
        if self.running:
            return
        stop = self._stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.round()
                except Exception as exc:  # reported by /health; the next round tries again
                    self.last_error = str(exc)
                    log.exception("%s round failed", self.name)

        self._thread = threading.Thread(target=loop, name=f"knowledger-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
