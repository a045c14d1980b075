"""The service's door to the chain: serialised access where the node is in-process, chain errors turned
into the API's, and the consent check every profile read goes through.

``verify_consent`` answers for the current head block, which it names: each request asks the chain for its
head (one cheap request), and :class:`backend.services.consent_view.ConsentView` gives the consent at that
head, reading the registry again only for a (subject, partner) whose consent changed since it was read (it
follows the registry's events). There is no time-based cache, so there is nothing stale to serve.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio.to_thread

from backend.chain import (
    PURPOSE_NAMES,
    AsyncHeads,
    BlockHead,
    ChainClient,
    ChainError,
    ChainTarget,
    ConsentRegistryClient,
    Purpose,
    purposes_in_mask,
)
from backend.core.shared_read import AsyncSharedRead
from backend.errors import ChainUnavailable, ConsentRequired, from_chain_error
from backend.services.consent_view import ConsentView

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
        self,
        client: ChainClient,
        registry: ConsentRegistryClient,
        *,
        threads: int = 40,
        rpc_timeout_s: float = 10.0,
    ) -> None:
        self.client = client
        #: How many requests may wait on a chain on the network at once, each in a worker thread.
        self.threads = threads
        self._serial = self.client.target is ChainTarget.EMBEDDED
        #: The chain runs in this process: calls are CPU work, not network waits.
        self.in_process = self._serial
        self._lock = FairLock()
        self.consents = ConsentView(client, registry)
        self.available = True
        #: The newest head this process has seen (its number only ever grows).
        self._last_head: BlockHead | None = None
        #: The head for requests on the event loop: one request to the node for every caller waiting, sent
        #: from the loop (a chain in process has no URL: its head is asked directly).
        self._async_heads = (
            None
            if self.in_process or not client.url
            else AsyncHeads.for_target(
                client.url, client.target, timeout_s=rpc_timeout_s, option=client.url_option
            )
        )
        self._heads: AsyncSharedRead[BlockHead] = AsyncSharedRead(
            client.head if self._async_heads is None else self._async_heads.head
        )

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
        with self._as_app_errors(doing), self.guard():
            return fn()

    @contextlib.contextmanager
    def _as_app_errors(self, doing: str) -> Iterator[None]:
        """Chain errors raised inside become the API's (4xx for refusals, 503 when the node is unreachable,
        which also marks the chain unavailable); a block that ends without one marks it available."""
        try:
            yield
        except ChainError as exc:
            app_error = from_chain_error(exc, doing)
            if app_error.status_code == 503:
                self.available = False
            raise app_error from None
        self.available = True

    def _seen(self, head: BlockHead) -> BlockHead:
        last = self._last_head
        if last is None or head.number >= last.number:
            self._last_head = head
        return head

    def head(self) -> BlockHead:
        return self._seen(self.run("reading the chain head", self.client.head))

    def chain_time(self) -> int:
        """The chain's clock for stamping what the service accepts: the head's timestamp when the node
        answers; when it does not, the newest head this process has seen, never a guess forward from it, so
        the time is never later than the block that will record it. Raises ``ChainUnavailable`` (503) if
        no head was ever seen."""
        try:
            return self.head().timestamp
        except ChainUnavailable:
            if self._last_head is None:
                raise
            return self._last_head.timestamp

    def verify_consent(
        self, subject: bytes, partner: str, needed: frozenset[Purpose] = RECOMMENDATION_PURPOSES
    ) -> ConsentCheck:
        """Check on chain, now, which purposes ``subject`` holds for ``partner``, at the head block the check
        names. Fails closed: an unreachable chain raises ``ChainUnavailable`` (503), never a default
        answer."""

        def read() -> tuple[BlockHead, int]:
            head = self._seen(self.client.head())
            return head, self.consents.mask_at(subject, partner, head)

        head, mask = self.run("checking consent on chain", read)
        held = purposes_in_mask(mask)
        return ConsentCheck(head, held, frozenset(needed - held))

    def head_soon(self) -> asyncio.Future[BlockHead]:
        """The head, read from now on (shared with every concurrent caller, sent after this call), for a
        request that has other waits first: pass it to :meth:`require_consent_async` so the two overlap. A
        request that stops before it needs the head leaves it unread without a warning."""
        future = asyncio.ensure_future(self._heads.get())
        future.add_done_callback(_retrieved)
        return future

    async def require_consent_async(
        self,
        subject: bytes,
        partner: str,
        needed: frozenset[Purpose] = RECOMMENDATION_PURPOSES,
        *,
        head: Awaitable[BlockHead] | None = None,
    ) -> ConsentCheck:
        """:meth:`require_consent` awaited on the event loop, for a chain on the network: the head comes from
        a request sent after this call (shared with every concurrent caller), or ``head`` (from
        :meth:`head_soon`, sent after the request arrived), and the consent from the view when it can answer
        for that head without the node, else from the node (in a worker thread)."""
        if self.in_process:
            raise RuntimeError("the in-process chain is asked from the event loop directly (require_consent)")
        with self._as_app_errors("checking consent on chain"):
            block = self._seen(await (head if head is not None else self._heads.get()))
            mask = self.consents.known(subject, partner, block)
            if mask is None:
                mask = await anyio.to_thread.run_sync(self.consents.mask_at, subject, partner, block)
        held = purposes_in_mask(mask)
        return self._required(ConsentCheck(block, held, frozenset(needed - held)))

    def consents_at_one_head(
        self, subjects: Sequence[bytes], partner: str, *, chunk: int = 100
    ) -> tuple[BlockHead, list[frozenset[Purpose]]]:
        """The purposes each of ``subjects`` holds for ``partner``, all at one head block (which it names).
        Read in chunks pinned to that head, so a long list never holds the in-process chain for its whole
        length. Fails closed like :meth:`verify_consent`."""
        head = self.run("checking consent on chain", lambda: self._seen(self.client.head()))
        masks: list[int] = []
        for start in range(0, len(subjects), chunk):
            part = subjects[start : start + chunk]
            masks += self.run(
                "checking consent on chain",
                lambda part=part: [self.consents.mask_at(s, partner, head) for s in part],  # type: ignore[misc]
            )
        return head, [purposes_in_mask(m) for m in masks]

    def require_consent(
        self, subject: bytes, partner: str, needed: frozenset[Purpose] = RECOMMENDATION_PURPOSES
    ) -> ConsentCheck:
        return self._required(self.verify_consent(subject, partner, needed))

    @staticmethod
    def _required(check: ConsentCheck) -> ConsentCheck:
        if not check.ok:
            names = ", ".join(sorted(PURPOSE_NAMES[p] for p in check.missing))
            raise ConsentRequired(
                f"the user has not granted {names} to this partner (checked on chain at block "
                f"{check.head.number}); no profile was used",
                missing=sorted(PURPOSE_NAMES[p] for p in check.missing),
                block=check.head.number,
            )
        return check

    async def aclose(self) -> None:
        """Close this event loop's connection to the node (at the app's shutdown)."""
        if self._async_heads is not None:
            await self._async_heads.aclose()


def _retrieved(future: asyncio.Future[BlockHead]) -> None:
    if not future.cancelled():
        future.exception()  # marks a failure seen: the request it was for answered without it
