"""The service's door to the chain: one deployment, serialised access where the node is in-process, and
the consent check every profile read goes through.

``verify_consent`` reads the consent mask *at the current head block*. State at a block hash never
changes, so the answer is kept for exactly as long as that block is the head: each request still asks the
chain for its head (one cheap request), and the first request after any new block (a revocation, say)
reads the mask afresh. There is no time-based cache, so there is nothing stale to serve.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from backend.chain import (
    PURPOSE_NAMES,
    BlockHead,
    ChainClient,
    ChainError,
    ChainTarget,
    ConsentRegistryClient,
    Purpose,
    purposes_in_mask,
)
from backend.errors import ConsentRequired, from_chain_error

T = TypeVar("T")

#: What a partner needs before a learner's profile may reach the recommender.
RECOMMENDATION_PURPOSES = frozenset({Purpose.PROFILING, Purpose.PRODUCT_RECOMMENDATION})


@dataclass(frozen=True)
class ConsentCheck:
    """The result of one on-chain consent check."""

    head: BlockHead
    held: frozenset[Purpose]
    missing: frozenset[Purpose]

    @property
    def ok(self) -> bool:
        return not self.missing


class FairLock:
    """A re-entrant lock granted in arrival order.

    ``threading.RLock`` is not fair: the event loop thread, which checks consent for one request after
    another, releases and re-takes it faster than a waiting worker thread wakes up, so a revocation waiting
    for the in-process chain could wait for seconds under load. Here a release hands the lock to the
    longest waiter."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: collections.deque[tuple[int, threading.Lock]] = collections.deque()

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None and not self._waiters:
                self._owner, self._depth = me, 1
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append((me, gate))
        gate.acquire()  # released by the owner handing over (then we own it)

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth:
                return
            if self._waiters:
                owner, gate = self._waiters.popleft()
                self._owner, self._depth = owner, 1
                gate.release()
            else:
                self._owner = None

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ChainGateway:
    """Serialises access to an in-process chain (eth-tester is not thread-safe); a devnet or RPC node
    takes concurrent reads, and writes are ordered per sender by ``ChainClient``."""

    def __init__(
        self, client: ChainClient, registry: ConsentRegistryClient, *, max_cached: int = 200_000
    ) -> None:
        self.client = client
        self._registry = registry
        self._serial = self.client.target is ChainTarget.EMBEDDED
        #: The chain runs in this process: calls are CPU work, not network waits.
        self.in_process = self._serial
        self._lock = FairLock()
        self._cache_lock = threading.Lock()
        self._cache_head: str | None = None
        self._masks: dict[tuple[bytes, str], int] = {}
        self._max_cached = max_cached
        self.available = True
        self._last_head: tuple[int, float] | None = None

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        if self._serial:
            with self._lock:
                yield
        else:
            yield

    def run(self, doing: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` against the chain; chain errors become the API's errors (4xx for refusals, 503 when
        the node is unreachable)."""
        try:
            with self.guard():
                result = fn()
            self.available = True
            return result
        except ChainError as exc:
            app_error = from_chain_error(exc, doing)
            if app_error.status_code == 503:
                self.available = False
            raise app_error from None

    def head(self) -> BlockHead:
        head = self.run("reading the chain head", self.client.head)
        self._last_head = (head.timestamp, time.monotonic())
        return head

    def chain_time_estimate(self) -> int:
        """The chain's clock: the head's timestamp when the node answers; when it does not, the last
        head seen plus the time elapsed since (so a conversion can be accepted while the chain is down)."""
        from backend.errors import ChainUnavailable

        try:
            return self.head().timestamp
        except ChainUnavailable:
            if self._last_head is None:
                raise
            ts, seen = self._last_head
            return ts + int(time.monotonic() - seen)

    def verify_consent(
        self, subject: bytes, partner: str, needed: frozenset[Purpose] = RECOMMENDATION_PURPOSES
    ) -> ConsentCheck:
        """Check on chain, now, which purposes ``subject`` holds for ``partner``. Fails closed: an
        unreachable chain raises ``ChainUnavailable`` (503), never a default answer."""

        def read() -> tuple[BlockHead, int]:
            head = self.client.head()
            self._last_head = (head.timestamp, time.monotonic())
            key = (subject, partner)
            with self._cache_lock:
                if head.hash != self._cache_head:
                    self._masks.clear()
                    self._cache_head = head.hash
                mask = self._masks.get(key)
            if mask is None:
                mask = self._registry.consent_mask(subject, partner, block=head.number)
                with self._cache_lock:
                    if self._cache_head == head.hash and len(self._masks) < self._max_cached:
                        self._masks[key] = mask
            return head, mask

        head, mask = self.run("checking consent on chain", read)
        held = purposes_in_mask(mask)
        return ConsentCheck(head, held, frozenset(needed - held))

    def require_consent(
        self, subject: bytes, partner: str, needed: frozenset[Purpose] = RECOMMENDATION_PURPOSES
    ) -> ConsentCheck:
        check = self.verify_consent(subject, partner, needed)
        if not check.ok:
            names = ", ".join(sorted(PURPOSE_NAMES[p] for p in check.missing))
            raise ConsentRequired(
                f"the user has not granted {names} to this partner (checked on chain at block "
                f"{check.head.number}); no profile was used",
                missing=sorted(PURPOSE_NAMES[p] for p in check.missing),
                block=check.head.number,
            )
        return check

    def invalidate(self) -> None:
        with self._cache_lock:
            self._masks.clear()
            self._cache_head = None
