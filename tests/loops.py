"""Running a coroutine to its end from a test, whatever event loop the test's thread already runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def in_a_loop_of_its_own(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 120) -> T:
    """``asyncio.run(main())`` in a thread of its own: the test process may already run an event loop in
    this thread (the browser tests' Playwright does), where ``asyncio.run`` refuses to start another. An
    exception of the scenario is raised here; a scenario that does not end within ``timeout`` fails."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(asyncio.run(main()))
        except BaseException as exc:  # handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    if errors:
        raise errors[0]
    assert out, "the scenario did not finish"
    return out[0]
