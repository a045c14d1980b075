"""Small readers of JSON-RPC answers and node errors, shared by the client."""

from __future__ import annotations

from typing import Any

import requests

from .exceptions import ChainError
from .results import BlockHead


def is_funds_error(exc: BaseException) -> bool:
    """Nodes word it differently: geth/anvil "insufficient funds", py-evm "cannot afford txn gas"."""
    text = str(exc).lower()
    return "insufficient funds" in text or "cannot afford" in text or "not enough balance" in text


def is_connection_error(exc: BaseException) -> bool:
    return isinstance(
        exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)
    )


def as_int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value)


def block_head(block: Any) -> BlockHead:
    """A head from an ``eth_getBlockByNumber`` answer's block (``ChainError`` when the node gave none)."""
    if not block:
        raise ChainError("the node returned no latest block")
    return BlockHead(as_int(block["number"]), as_hex(block["hash"]), as_int(block["timestamp"]))


def as_hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


#: How nodes say they no longer hold a block's state (anvil, geth, erigon, reth).
_NO_STATE = ("BlockOutOfRangeError", "missing trie node", "historical state", "state is not available")


def is_missing_state(error: object) -> bool:
    """Whether a JSON-RPC error says the node no longer holds the state of the block asked for (a node that
    is not an archive), which is not a revert."""
    return any(mark in str(error) for mark in _NO_STATE)
