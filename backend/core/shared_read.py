"""One read shared by every concurrent caller, each still getting a read that began after it asked.

The hot path asks two things of a shared store on every request: the chain's head block (a consent check
must name a head at least as new as any revocation answered before the request arrived, in any process)
and the directory's version row (a partner key revoked by another process must stop working). Under load,
many requests ask at once, and each read is a network round trip plus its CPU on both ends.

``SharedRead`` (for worker threads) and ``AsyncSharedRead`` (for the event loop) give each caller the
result of a read **that started after the caller asked**: a read already in flight when a caller arrives
does not count for it (it may have been sent before the change the caller must see), so the caller waits
for it to end and then joins the next one, which one of the waiting callers starts for all of them. So
freshness is what one read per request gives, at a cost of one read per round trip rather than per request
(what group commit does for writes). A failed read fails every caller that shared it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class SharedRead(Generic[T]):
    """``read`` shared by concurrent threads (see the module docstring)."""

    def __init__(self, read: Callable[[], T]) -> None:
        self._read = read
        self._cond = threading.Condition()
        self._started = 0  # reads begun
        self._done = 0  # the number of the last read that ended
        self._running = False
        self._last: tuple[T | None, BaseException | None] = (None, None)
        #: Reads made, answers given, callers waiting now (for tests and metrics).
        self.reads = 0
        self.answers = 0
        self.waiting = 0

    def get(self) -> T:
        with self._cond:
            need = self._started + 1  # the first read to begin after now
            while True:
                if self._done >= need:
                    self.answers += 1
                    return _outcome(self._last)
                if not self._running:
                    self._running = True
                    self._started += 1
                    number = self._started
                    self.reads += 1
                    break
                self.waiting += 1
                self._cond.wait()
                self.waiting -= 1
        outcome: tuple[T | None, BaseException | None]
        try:
            outcome = (self._read(), None)
        except BaseException as exc:  # handed to every caller that shares this read
            outcome = (None, exc)
        with self._cond:
            self._last = outcome
            self._done = number
            self._running = False
            self.answers += 1
            self._cond.notify_all()
        return _outcome(outcome)


class _LoopState:
    def __init__(self) -> None:
        self.started = 0
        self.done = 0
        self.task: asyncio.Task[None] | None = None
        self.last: tuple[object, BaseException | None] = (None, None)
        self.limiter: anyio.CapacityLimiter | None = None


class AsyncSharedRead(Generic[T]):
    """``read`` shared by concurrent coroutines of an event loop (see the module docstring): a blocking
    function (run in a worker thread) or a coroutine function (awaited on the loop). Each event loop has its
    own state."""

    def __init__(self, read: Callable[[], T] | Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._awaitable = inspect.iscoroutinefunction(read)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self.reads = 0
        self.answers = 0

    async def get(self) -> T:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState()
        need = state.started + 1
        while True:
            if state.done >= need:
                self.answers += 1
                return _outcome(state.last)  # type: ignore[return-value]
            if state.task is None:  # the next read, which callers join until it begins
                self.reads += 1
                state.task = loop.create_task(self._run(state, state.started + 1))
            # shielded: a caller that gives up (a cancelled request) does not cancel the others' read
            await asyncio.shield(state.task)

    async def _run(self, state: _LoopState, number: int) -> None:
        state.started = number  # from here on, a caller that asks needs the read after this one
        try:
            if self._awaitable:
                state.last = (await self._read(), None)  # type: ignore[misc]
            else:
                # its own limiter: the shared pool's tokens may all be held by requests waiting for this read
                limiter = state.limiter = state.limiter or anyio.CapacityLimiter(1)
                state.last = (await anyio.to_thread.run_sync(self._read, limiter=limiter), None)
        except BaseException as exc:  # handed to every caller that shares this read (cancelled too)
            state.last = (None, exc)
        finally:
            state.done = number
            state.task = None


def _outcome(outcome: tuple[T | None, BaseException | None]) -> T:
    value, error = outcome
    if error is not None:
        raise error
    return value  # type: ignore[return-value]
