"""The ABI codec: contract functions, events and handles, encoded and decoded with eth-abi.

Everything here is derived from an ABI (a contract artifact's ``abi`` list): function selectors, event
topics (``topic0`` is the keccak of the event's canonical signature) and the conversion of decoded values to
Python (structs to dicts by component name, addresses checksummed). Nothing here talks to a node:
``ContractHandle.call``/``send`` hand a ``FunctionCall`` to the ``ChainClient`` that made the handle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from .results import Event, TxResult
from .types import checksum


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples expanded)."""
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


def signature_of(entry: Mapping[str, Any]) -> str:
    """``name(type,...)``: the canonical signature of an ABI function, event or error."""
    return f"{entry['name']}({','.join(abi_type(p) for p in entry['inputs'])})"


def event_topic(entry: Mapping[str, Any]) -> bytes:
    """An event's ``topic0``: the keccak of its canonical signature."""
    return bytes(keccak(text=signature_of(entry)))


def normalize(value: Any, param: Mapping[str, Any]) -> Any:
    """ABI-decoded value → Python: tuples to dicts by component name, addresses checksummed."""
    t = str(param["type"])
    if t.endswith("]"):
        inner = dict(param)
        inner["type"] = t[: t.rindex("[")]
        return [normalize(v, inner) for v in value]
    if t == "tuple":
        return {c["name"]: normalize(v, c) for v, c in zip(value, param["components"], strict=True)}
    if t == "address":
        return str(to_checksum_address(value))
    return value


def _fix_addresses(value: Any, param: Mapping[str, Any]) -> Any:
    """Like ``normalize`` but structs stay tuples (the typed clients build dataclasses from them)."""
    t = str(param["type"])
    if t.endswith("]"):
        inner = dict(param)
        inner["type"] = t[: t.rindex("[")]
        return [_fix_addresses(v, inner) for v in value]
    if t == "tuple":
        return tuple(_fix_addresses(v, c) for v, c in zip(value, param["components"], strict=True))
    if t == "address":
        return str(to_checksum_address(value))
    return value


class AbiFunction:
    """One ABI function: selector, input/output types, and fast encode/decode with eth-abi."""

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.entry = entry
        self.name = str(entry["name"])
        self.input_types = [abi_type(p) for p in entry["inputs"]]
        self.output_types = [abi_type(p) for p in entry.get("outputs", [])]
        self.signature = f"{self.name}({','.join(self.input_types)})"
        self.selector = bytes(keccak(text=self.signature))[:4]
        self.mutability = str(entry.get("stateMutability", "nonpayable"))

    def encode(self, args: Sequence[Any]) -> bytes:
        if len(args) != len(self.input_types):
            raise TypeError(f"{self.signature} takes {len(self.input_types)} arguments, got {len(args)}")
        return self.selector + abi_encode(self.input_types, list(args))

    def decode(self, data: bytes) -> Any:
        """Outputs as Python values: one output unwrapped, several as a tuple; structs stay tuples here
        (the typed clients build dataclasses from them)."""
        values = abi_decode(self.output_types, data)
        outs = self.entry.get("outputs", [])
        fixed = tuple(_fix_addresses(v, o) for v, o in zip(values, outs, strict=True))
        return fixed[0] if len(fixed) == 1 else fixed


class EventDecoder:
    """Decodes logs of every ABI added to it, by topic0."""

    def __init__(self) -> None:
        self._by_topic: dict[bytes, Mapping[str, Any]] = {}

    def add_abi(self, abi: Sequence[Mapping[str, Any]]) -> None:
        for entry in abi:
            if entry.get("type") != "event" or entry.get("anonymous"):
                continue
            self._by_topic[event_topic(entry)] = entry

    def decode(self, log: Mapping[str, Any]) -> Event | None:
        """The decoded event, or None for a log of no known event."""
        topics = [bytes(t) for t in log.get("topics", [])]
        if not topics:
            return None
        entry = self._by_topic.get(topics[0])
        if entry is None:
            return None
        inputs = entry["inputs"]
        indexed = [p for p in inputs if p.get("indexed")]
        plain = [p for p in inputs if not p.get("indexed")]
        args: dict[str, Any] = {}
        for p, topic in zip(indexed, topics[1:], strict=False):
            t = abi_type(p)
            if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                args[p["name"]] = topic  # dynamic indexed values are stored as their hash
            else:
                args[p["name"]] = normalize(abi_decode([t], topic)[0], p)
        data = bytes(log.get("data", b""))
        if plain:
            values = abi_decode([abi_type(p) for p in plain], data)
            for p, v in zip(plain, values, strict=True):
                args[p["name"]] = normalize(v, p)
        ordered = {p["name"]: args[p["name"]] for p in inputs if p["name"] in args}
        block = log.get("blockNumber")
        tx_hash = log.get("transactionHash")
        return Event(
            str(entry["name"]),
            ordered,
            checksum(log["address"]),
            int(log.get("logIndex", 0)),
            None if block is None else int(block),
            None if tx_hash is None else "0x" + bytes(tx_hash).hex(),
        )


class Transactor(Protocol):
    """What a ``ContractHandle`` needs from its client (``ChainClient`` is one)."""

    def call(
        self, fn_call: FunctionCall, *, sender: str | None = None, block: int | str = "latest"
    ) -> Any: ...

    def send(
        self, fn_call: FunctionCall, sender: str | None = None, *, value: int = 0, gas: int | None = None
    ) -> TxResult: ...


class ContractHandle:
    """A deployed contract: its address, ABI functions and event topics, and the client to call and send
    through."""

    def __init__(self, client: Transactor, name: str, address: str, abi: Sequence[Mapping[str, Any]]) -> None:
        self.client = client
        self.name = name
        self.address = checksum(address)
        self.abi = list(abi)
        self.functions: dict[str, AbiFunction] = {}
        self.topics: dict[str, bytes] = {}
        for entry in self.abi:
            if entry.get("type") == "function":
                fn = AbiFunction(entry)
                if fn.name in self.functions:  # overloads: keep them reachable by signature
                    self.functions[fn.signature] = fn
                else:
                    self.functions[fn.name] = fn
            elif entry.get("type") == "event" and not entry.get("anonymous"):
                self.topics[str(entry["name"])] = event_topic(entry)

    def fn(self, name: str, *args: Any) -> FunctionCall:
        try:
            abi_fn = self.functions[name]
        except KeyError:
            raise AttributeError(f"{self.name} has no function {name!r}") from None
        return FunctionCall(self, abi_fn, tuple(args))

    def event_topic(self, name: str) -> bytes:
        """The ``topic0`` of the event ``name``, from this contract's ABI."""
        try:
            return self.topics[name]
        except KeyError:
            raise AttributeError(
                f"{self.name} has no event {name!r}; its events: {', '.join(sorted(self.topics))}"
            ) from None

    def call(self, name: str, *args: Any, sender: str | None = None, block: int | str = "latest") -> Any:
        return self.client.call(self.fn(name, *args), sender=sender, block=block)

    def send(
        self, name: str, *args: Any, sender: str | None = None, value: int = 0, gas: int | None = None
    ) -> TxResult:
        return self.client.send(self.fn(name, *args), sender=sender, value=value, gas=gas)

    def __repr__(self) -> str:
        return f"<{self.name} at {self.address}>"


class FunctionCall:
    """A contract function bound to its arguments (what ``ChainClient.send`` and ``.call`` take)."""

    def __init__(self, contract: ContractHandle, fn: AbiFunction, args: tuple[Any, ...]) -> None:
        self.contract = contract
        self.fn = fn
        self.args = args
        self._data: bytes | None = None

    @property
    def to(self) -> str:
        return self.contract.address

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.fn.encode(self.args)
        return self._data

    @property
    def label(self) -> str:
        return f"{self.contract.name}.{self.fn.name}"

    def decode(self, output: bytes) -> Any:
        return self.fn.decode(output)
