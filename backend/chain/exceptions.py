"""The exception classes of the chain layer that are written by hand.

- ``ChainError`` and the failures of the connection and the node: ``ChainUnreachable``, ``WrongChain``,
  ``MissingKey``, ``InsufficientFunds``, ``TransactionTimeout``, ``TransactionFailed``,
  ``DeploymentNotFound``;
- ``ContractReverted``, the base of every revert, and its generic kinds: ``RevertedWithReason``
  (``Error(string)``), ``Panic``, ``UnknownRevert`` and ``ForeignContractError`` (a custom error of a contract
  outside KnowLedger);
- ``ErrorSpec``: what a custom error's class carries (name, arguments, declaring contracts).

One subclass per custom error of our contracts lives in the generated ``contract_errors`` module; callers use
``backend.chain.errors``, which exposes both, and ``decode_revert``.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar

from eth_utils import keccak, to_checksum_address

from .abi import abi_type
from .types import AgreementStatus, Purpose

# ------------------------------------------------------------------------------------ connection errors


class ChainError(Exception):
    """Base of every error raised by ``backend.chain``."""

    #: The command-line option or environment variable the user should look at, where there is one.
    option: str | None = None

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if option is not None:
            self.option = option

    def __str__(self) -> str:
        return self.message


class ChainUnreachable(ChainError):
    """The node does not answer (not running, wrong URL, connection refused or timed out)."""

    def __init__(self, url: str, detail: str = "", *, option: str = "KNOWLEDGER_RPC_URL") -> None:
        self.url = url
        self.detail = detail
        msg = f"cannot reach {url}: is the node running? is {option} right?"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg, option=option)


class WrongChain(ChainError):
    """The node serves another chain than the one expected (chain id mismatch)."""

    def __init__(self, actual: int, expected: int, *, option: str = "KNOWLEDGER_RPC_URL") -> None:
        self.actual = actual
        self.expected = expected
        super().__init__(
            f"Connected to chain {actual}, expected {expected}: is {option} right?", option=option
        )


class MissingKey(ChainError):
    """No private key is available to sign for the sender."""

    def __init__(
        self, message: str | None = None, *, address: str | None = None, option: str | None = None
    ) -> None:
        self.address = address
        if message is None:
            who = f" for {address}" if address else ""
            message = (
                f"no private key{who}: set KNOWLEDGER_PRIVATE_KEY, or pass --keystore PATH with "
                "KNOWLEDGER_KEYSTORE_PASSWORD set"
            )
        super().__init__(message, option=option or "KNOWLEDGER_PRIVATE_KEY")


class InsufficientFunds(ChainError):
    """The sender cannot pay for the gas (and value) of what it is about to send."""

    def __init__(
        self, address: str, balance: int | None, needed: int | None, what: str = "this transaction"
    ) -> None:
        self.address = address
        self.balance = balance
        self.needed = needed
        if balance is not None and needed is not None:
            amounts = f"has {_eth(balance)} but {what} needs about {_eth(needed)}"
        else:
            amounts = f"cannot pay for {what}"
        super().__init__(
            f"{address} {amounts}: fund this account or use another key (KNOWLEDGER_PRIVATE_KEY)",
            option="KNOWLEDGER_PRIVATE_KEY",
        )


class TransactionTimeout(ChainError):
    """The transaction was sent but no receipt came within the timeout."""

    def __init__(self, tx_hash: str, seconds: float) -> None:
        self.tx_hash = tx_hash
        super().__init__(
            f"transaction {tx_hash} was not mined within {seconds:.0f}s: check the node and the gas price, "
            "then look the hash up before sending again"
        )


class TransactionFailed(ChainError):
    """The transaction failed without revert data (e.g. out of gas)."""


class DeploymentNotFound(ChainError):
    """A manifest points at an address without contract code on this chain."""


def _eth(wei: int) -> str:
    return f"{wei / 1e18:.6f} ETH ({wei} wei)"


# ------------------------------------------------------------------------------- formatting revert values

_TIME_PARAMS = {
    "deadline",
    "timestamp",
    "expiresAt",
    "maxExpiresAt",
    "time",
    "recommendedAt",
    "finalAfter",
    "validFrom",
    "validUntil",
    "start",
    "end",
}

_ROLES = {
    b"\0" * 32: "DEFAULT_ADMIN_ROLE",
    bytes(keccak(text="NOTICE_ADMIN_ROLE")): "NOTICE_ADMIN_ROLE",
}

PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "value out of range for an enum",
    0x22: "corrupt storage byte array",
    0x31: "pop() on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory (allocation too large)",
    0x51: "call to an uninitialised internal function",
}

#: The hint of a custom error that has none in ``error_hints.toml``.
DEFAULT_HINT = "see the error's NatSpec in contracts/interfaces/ for when it is raised"


def format_value(name: str, type_: str, value: Any) -> str:
    """A revert argument for a message: roles, purposes and agreement statuses by name, times also as UTC."""
    if isinstance(value, bytes):
        if type_ == "bytes32" and value in _ROLES and "role" in name.lower():
            return _ROLES[value]
        return "0x" + value.hex()
    if type_ == "address":
        return str(to_checksum_address(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        if name == "purpose" and value in Purpose._value2member_map_:
            return f"{value} ({Purpose(value).display_name})"
        if name == "status" and value in AgreementStatus._value2member_map_:
            return AgreementStatus(value).name.capitalize()
        if name in _TIME_PARAMS and 0 < value < 1 << 40:
            try:
                when = datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            except (OverflowError, OSError, ValueError):
                return str(value)
            return f"{value} ({when})"
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value("", "", v) for v in value) + "]"
    return str(value)


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


# ---------------------------------------------------------------------------------------------- reverts


@dataclass(frozen=True)
class ErrorSpec:
    """A custom error: its name, its arguments as (ABI name, canonical type), and the contracts (or
    "OpenZeppelin") that declare it."""

    name: str
    inputs: tuple[tuple[str, str], ...]
    contracts: tuple[str, ...]

    @cached_property
    def signature(self) -> str:
        return f"{self.name}({','.join(t for _, t in self.inputs)})"

    @cached_property
    def selector(self) -> bytes:
        return bytes(keccak(text=self.signature))[:4]

    @property
    def attributes(self) -> tuple[str, ...]:
        """The Python attribute each argument is also stored under on an instance (``attribute_name``)."""
        return tuple(attribute_name(n) for n, _ in self.inputs)

    @classmethod
    def from_abi(cls, entry: Mapping[str, Any], contract: str) -> ErrorSpec:
        inputs = tuple((str(p.get("name") or f"arg{i}"), abi_type(p)) for i, p in enumerate(entry["inputs"]))
        return cls(str(entry["name"]), inputs, (contract,))

    @classmethod
    def from_signature(cls, text: str, contract: str = "OpenZeppelin") -> ErrorSpec:
        """From ``"Name(type name, ...)"`` (a Solidity declaration without ``error``)."""
        name, _, rest = text.partition("(")
        params = [p.strip() for p in rest.rstrip(")").split(",") if p.strip()]
        inputs = tuple((p.split()[1], p.split()[0]) for p in params)
        return cls(name, inputs, (contract,))


class ContractReverted(ChainError):
    """A call or transaction reverted. Subclasses name the custom error; ``args_by_name`` holds its values by
    their ABI names, and each value is also an attribute in snake_case (``exc.conversion_id``).

    ``context`` says what was being done ("ConsentRegistry.grant"), ``data`` is the raw revert data.
    """

    error_name: ClassVar[str] = "revert"
    #: The custom error of a generated subclass; None for the generic kinds.
    spec: ClassVar[ErrorSpec | None] = None
    hint: ClassVar[str] = (
        "the contract refused the call without saying why: check the inputs against its NatSpec"
    )

    def __init__(
        self,
        data: bytes = b"",
        values: Sequence[Any] = (),
        *,
        context: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.data = bytes(data)
        self.values = tuple(values)
        self.context = context
        spec = self.error_spec
        names = [n for n, _ in spec.inputs] if spec else []
        self.args_by_name: dict[str, Any] = dict(zip(names, self.values, strict=False))
        if spec is not None and type(self).spec is spec:
            for attribute, value in zip(spec.attributes, self.values, strict=False):
                setattr(self, attribute, value)
        super().__init__(self._compose(detail))

    @property
    def error_spec(self) -> ErrorSpec | None:
        """The custom error this is (None for ``Error(string)``, panics and unknown data)."""
        return type(self).spec

    @property
    def selector(self) -> str:
        return "0x" + self.data[:4].hex()

    def _compose(self, detail: str | None) -> str:
        where = f"{self.context} reverted" if self.context else "reverted"
        spec = self.error_spec
        formatted: dict[str, str] = {}
        if spec is not None:
            pairs = list(zip(spec.inputs, self.values, strict=False))
            formatted = {n: format_value(n, t, v) for (n, t), v in pairs}
            shown = ", ".join(f"{n}={format_value('', t, v)}" for (n, t), v in pairs)
            head = f"{where} with {spec.name}({shown})"
        else:
            head = f"{where}: {detail}" if detail else where
        hint = self.hint.format_map(_SafeDict(formatted))
        return f"{head}: {hint}"


class RevertedWithReason(ContractReverted):
    """``revert("...")`` / ``require(cond, "...")``: ``Error(string)``."""

    error_name = "Error"
    hint = "the contract's own reason; fix the input it names"

    def __init__(
        self,
        data: bytes = b"",
        values: Sequence[Any] = (),
        *,
        context: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.reason = str(values[0]) if values else (detail or "")
        super().__init__(data, values, context=context, detail=f"Error({self.reason!r})")


class Panic(ContractReverted):
    """A Solidity panic (``Panic(uint256)``): an assertion, overflow, division by zero, bad index..."""

    error_name = "Panic"
    hint = "this is a bug or an input out of range: report it with the call's inputs"

    def __init__(
        self,
        data: bytes = b"",
        values: Sequence[Any] = (),
        *,
        context: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.code = int(values[0]) if values else -1
        desc = PANIC_CODES.get(self.code, "unknown panic code")
        super().__init__(data, values, context=context, detail=f"Panic(0x{self.code:02x}): {desc}")


class UnknownRevert(ContractReverted):
    """Revert data that matches no known error (or no data at all)."""

    hint = (
        "no known error matches the revert data: recompile (python -m backend.chain.compiler) if the "
        "contracts "
        "changed, or check the inputs against the NatSpec"
    )


class ForeignContractError(ContractReverted):
    """A custom error declared only by a contract outside KnowLedger, whose ABI was given to
    ``ChainClient.contract(name, address, abi)`` (``errors.register_abi``). There is no class per such error:
    ``error_spec`` (its name, arguments and contract) and ``args_by_name`` come from that ABI, and there are
    no snake_case attributes."""

    hint = "a custom error of another contract: see that contract's documentation for when it is raised"

    def __init__(
        self,
        data: bytes = b"",
        values: Sequence[Any] = (),
        *,
        spec: ErrorSpec,
        context: str | None = None,
    ) -> None:
        self._foreign_spec = spec
        super().__init__(data, values, context=context)

    @property
    def error_spec(self) -> ErrorSpec:
        return self._foreign_spec


# ------------------------------------------------------------------------------------ argument attributes

#: Names an argument attribute must not take (it would shadow what every revert has); they get a ``_``.
_RESERVED = frozenset(
    {
        "add_note",
        "args",
        "args_by_name",
        "context",
        "data",
        "error_name",
        "error_spec",
        "hint",
        "message",
        "option",
        "selector",
        "spec",
        "values",
        "with_traceback",
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def attribute_name(abi_name: str) -> str:
    """The snake_case attribute of a revert argument: ``conversionId`` → ``conversion_id``."""
    snake = _CAMEL.sub("_", abi_name).lower()
    if snake in _RESERVED or keyword.iskeyword(snake) or not snake.isidentifier():
        snake += "_"
    return snake
