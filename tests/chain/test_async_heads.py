"""The chain's head awaited on an event loop (``backend.chain.AsyncHeads``, the hot path's head against a
node): the same head the synchronous client reads, and a node out of reach, a non-JSON-RPC answer or a
JSON-RPC error each a named chain error that says what to check."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from backend.chain import AsyncHeads, ChainTarget, connect_devnet
from backend.chain.devnet import AnvilNode
from backend.chain.errors import ChainError, ChainUnreachable
from tests.loops import in_a_loop_of_its_own as _run

T = TypeVar("T")


async def _head_then_close(heads: AsyncHeads) -> Any:
    try:
        return await heads.head()
    finally:
        await heads.aclose()


@pytest.mark.anvil
def test_the_head_is_the_one_the_client_reads(anvil_node: AnvilNode) -> None:
    client = connect_devnet(anvil_node)
    try:
        client.mine(2)
        heads = AsyncHeads.for_target(anvil_node.url, ChainTarget.DEVNET)
        awaited = _run(lambda: _head_then_close(heads))
        assert awaited == client.head()
        assert awaited.number >= 2 and awaited.hash.startswith("0x") and len(awaited.hash) == 66
    finally:
        client.close()


def test_a_node_out_of_reach_is_chain_unreachable_naming_the_option() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    heads = AsyncHeads(f"http://127.0.0.1:{port}", timeout_s=2.0, option="KNOWLEDGER_RPC_URL")
    with pytest.raises(ChainUnreachable) as caught:
        _run(lambda: _head_then_close(heads))
    assert f"127.0.0.1:{port}" in str(caught.value) and "KNOWLEDGER_RPC_URL" in str(caught.value)


@pytest.fixture
def answering() -> Iterator[Callable[[int, bytes], str]]:
    """An HTTP server that answers every POST with the status and body the test sets."""
    reply: dict[str, Any] = {"status": 200, "body": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(reply["status"])
            self.send_header("Content-Length", str(len(reply["body"])))
            self.end_headers()
            self.wfile.write(reply["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def set_reply(status: int, body: bytes) -> str:
        reply.update(status=status, body=body)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield set_reply
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (502, b"bad gateway", ChainUnreachable, "HTTP 502"),
        (200, b"<html>not a node</html>", ChainUnreachable, "not a JSON-RPC answer"),
        (200, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"busy"}}', ChainError, "busy"),
        (200, b'{"jsonrpc":"2.0","id":1,"result":null}', ChainError, "no latest block"),
    ],
)
def test_a_bad_answer_is_a_named_chain_error(
    answering: Callable[[int, bytes], str], status: int, body: bytes, error: type[Exception], says: str
) -> None:
    heads = AsyncHeads(answering(status, body), timeout_s=5.0)
    with pytest.raises(error) as caught:
        _run(lambda: _head_then_close(heads))
    assert says in str(caught.value)
