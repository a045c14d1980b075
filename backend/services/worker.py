"""A background worker: ``run_once`` is one round (tests and the operator call it directly); ``start`` runs
rounds in a daemon thread every ``interval`` seconds, keeping the loop alive across failures."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("knowledger")


class PeriodicWorker:
    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def run_once(self) -> object:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self, interval: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.run_once()
                except Exception as exc:  # reported by /health; the next round tries again
                    self.last_error = str(exc)
                    log.exception("%s round failed", self.name)

        self._thread = threading.Thread(target=loop, name=f"knowledger-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
