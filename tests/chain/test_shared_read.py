"""One read shared by concurrent callers (the chain's head, the directory's version): every caller gets a
read that began after it asked, concurrent callers share it, and a failure reaches each of them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from backend.core.shared_read import AsyncSharedRead, SharedRead
from tests.loops import in_a_loop_of_its_own as _in_a_loop_of_its_own

T = TypeVar("T")


class _Store:
    """A value that changes; reading it blocks until the test lets the read go."""

    def __init__(self) -> None:
        self.value = 0
        self.reads_begun = 0
        self.gates: list[threading.Event] = []
        self.fail = False

    def read(self) -> int:
        seen = self.value  # what the store holds when the read is sent
        gate = threading.Event()
        self.gates.append(gate)
        self.reads_begun += 1
        assert gate.wait(60)
        if self.fail:
            raise ConnectionError("the node went away")
        return seen


def _until(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not cond():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.001)


def test_a_caller_arriving_during_a_read_gets_the_next_one_shared_with_the_others() -> None:
    store = _Store()
    shared = SharedRead(store.read)
    got: dict[str, int] = {}

    def ask(name: str) -> None:
        got[name] = shared.get()

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    _until(lambda: store.reads_begun == 1)
    store.value = 1  # a change committed while the first read is in flight: later callers must see it
    late = [threading.Thread(target=ask, args=(f"late{i}",)) for i in range(5)]
    for t in late:
        t.start()
    _until(lambda: shared.waiting == 5)
    store.gates[0].set()
    _until(lambda: store.reads_begun == 2)  # one of the five begins the next read, for all of them
    store.gates[1].set()
    for t in (first, *late):
        t.join(60)
    assert got == {"first": 0, **{f"late{i}": 1 for i in range(5)}}
    assert shared.reads == 2 and shared.answers == 6


def test_a_failed_read_fails_every_caller_that_shared_it_and_the_next_caller_reads_again() -> None:
    store = _Store()
    store.fail = True
    shared = SharedRead(store.read)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            shared.get()
        except ConnectionError as exc:
            errors.append(exc)

    first = threading.Thread(target=ask)
    first.start()
    _until(lambda: store.reads_begun == 1)
    late = [threading.Thread(target=ask) for _ in range(3)]
    for t in late:
        t.start()
    _until(lambda: shared.waiting == 3)
    store.gates[0].set()
    _until(lambda: store.reads_begun == 2)
    store.gates[1].set()
    for t in (first, *late):
        t.join(60)
    assert len(errors) == 4 and shared.reads == 2
    store.fail = False
    store.value = 7
    threading.Timer(0, lambda: (_until(lambda: store.reads_begun == 3), store.gates[2].set())).start()
    assert shared.get() == 7  # nothing of the failure is kept


def test_on_the_event_loop_concurrent_callers_share_a_read_that_began_after_they_asked() -> None:
    store = _Store()
    shared = AsyncSharedRead(store.read)

    async def scenario() -> dict[str, int]:
        first = asyncio.ensure_future(shared.get())
        while store.reads_begun < 1:
            await asyncio.sleep(0.001)
        store.value = 1
        late = [asyncio.ensure_future(shared.get()) for _ in range(5)]
        await asyncio.sleep(0)  # each late caller is now waiting behind the read in flight
        store.gates[0].set()
        assert await first == 0
        while store.reads_begun < 2:
            await asyncio.sleep(0.001)
        store.gates[1].set()
        return {f"late{i}": v for i, v in enumerate(await asyncio.gather(*late))}

    assert _in_a_loop_of_its_own(scenario) == {f"late{i}": 1 for i in range(5)}
    assert shared.reads == 2 and shared.answers == 6


def test_on_the_event_loop_a_cancelled_caller_does_not_cancel_the_others_read() -> None:
    store = _Store()
    shared = AsyncSharedRead(store.read)

    async def scenario() -> int:
        leaving = asyncio.ensure_future(shared.get())
        staying = asyncio.ensure_future(shared.get())
        while store.reads_begun < 1:
            await asyncio.sleep(0.001)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        store.value = 3
        store.gates[0].set()
        return await staying

    assert _in_a_loop_of_its_own(scenario) == 0  # both asked before the read began: its answer holds for them
    assert shared.reads == 1


def test_on_the_event_loop_the_read_is_not_queued_behind_the_requests_that_wait_for_it() -> None:
    """Requests hold the worker-thread pool's tokens while they wait; the shared read has its own."""
    import anyio
    import anyio.to_thread

    shared = AsyncSharedRead(lambda: 42)
    release = threading.Event()

    async def scenario() -> int:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        busy = asyncio.ensure_future(anyio.to_thread.run_sync(release.wait))  # holds the only token
        await asyncio.sleep(0.01)
        with anyio.fail_after(30):
            value = await shared.get()
        release.set()
        await busy
        return value

    assert _in_a_loop_of_its_own(scenario) == 42
