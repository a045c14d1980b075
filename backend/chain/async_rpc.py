"""The chain's head, read from an event loop.

Against a node on the network every consent-gated request names a head block read after it arrived (see
:mod:`backend.core.shared_read`). Read through web3's ``HTTPProvider`` (``requests``) in a worker thread, one
head cost about 0.8 ms of CPU, most of it ``requests`` and ``http.client`` and the thread hand-off; one
``aiohttp`` request awaited on the loop costs about 0.17 ms (``docs/performance.md``, fourth round). Each
event loop has its own session (one keep-alive connection is enough: the shared read keeps at most one head
request in flight per loop).

Failures are the chain layer's: no answer, a refused connection or a timeout is ``ChainUnreachable`` (the
API's 503, fail closed), a JSON-RPC error ``ChainError``.
"""

from __future__ import annotations

import asyncio
import json
import weakref

import aiohttp

from .constants import ChainTarget
from .exceptions import ChainError, ChainUnreachable
from .results import BlockHead
from .rpc import block_head

_LATEST = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["latest", False]}
).encode()
_HEADERS = {"Content-Type": "application/json"}


class AsyncHeads:
    """``eth_getBlockByNumber("latest")`` awaited on the running event loop, one session per loop."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        trust_env: bool = False,
        option: str = "KNOWLEDGER_RPC_URL",
    ) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        #: A public network may be reached through the environment's proxy; a devnet on loopback is not.
        self._trust_env = trust_env
        self._option = option
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def for_target(
        cls, url: str, target: ChainTarget, *, timeout_s: float = 10.0, option: str = "KNOWLEDGER_RPC_URL"
    ) -> AsyncHeads:
        return cls(url, timeout_s=timeout_s, trust_env=target is ChainTarget.RPC, option=option)

    async def head(self) -> BlockHead:
        """The latest block's number, hash and timestamp."""
        try:
            async with self._session().post(self.url, data=_LATEST, headers=_HEADERS) as resp:
                if resp.status != 200:
                    raise ChainUnreachable(self.url, f"HTTP {resp.status}", option=self._option)
                answer = json.loads(await resp.read())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            detail = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise ChainUnreachable(self.url, detail, option=self._option) from exc
        except ValueError as exc:  # not JSON
            raise ChainUnreachable(self.url, f"not a JSON-RPC answer ({exc})", option=self._option) from exc
        if "error" in answer:
            raise ChainError(f"eth_getBlockByNumber failed: {answer['error']}")
        return block_head(answer.get("result"))

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # a loop that ended (a test client's) leaves its session behind: forget it
            for ended in [other for other in self._sessions if other.is_closed()]:
                self._sessions.pop(ended).detach()
            connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=30)
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=self._trust_env, raise_for_status=False
            )
        return session

    async def aclose(self) -> None:
        """Close this event loop's session (at the app's shutdown)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()
