"""What reading and writing the chain returns.

- ``TxResult``: a mined, successful transaction with its decoded events;
- ``Event``: one decoded log, its arguments as a standard client shows them;
- ``BlockHead``: the chain head one request saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BlockHead:
    """The chain head as one request saw it: state at ``hash`` never changes, so an answer read at this
    block stays the answer for as long as the head is this block."""

    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True)
class Event:
    """A decoded log: ``args`` holds the ABI values (structs as dicts, bytes32 as bytes, addresses
    checksummed), as a standard client (ethers, cast) would show them."""

    name: str
    args: dict[str, Any]
    address: str
    log_index: int
    block_number: int | None = None
    tx_hash: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction. ``value`` is the function's main result where the client can
    read it from the events (a new agreement or batch id, a deployed address)."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[Event, ...] = ()
    value: Any = None

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    def event(self, name: str) -> Event:
        """The first event called ``name``; ``KeyError`` listing what was emitted otherwise."""
        for e in self.events:
            if e.name == name:
                return e
        emitted = ", ".join(e.name for e in self.events) or "no events"
        raise KeyError(f"transaction {self.tx_hash} emitted no {name} ({emitted})")

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)
