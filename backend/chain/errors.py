"""Named errors of the chain layer: import every error class from here.

Every failure a caller can act on has its own class and a message that says what to do next:

- ``ChainUnreachable``, ``WrongChain``, ``MissingKey``, ``InsufficientFunds``, ``TransactionTimeout``,
  ``TransactionFailed``, ``DeploymentNotFound`` for the connection and the node (all ``ChainError``);
- ``ContractReverted`` for reverts, with one subclass per custom error of the contracts and of OpenZeppelin
  5.x. Those classes are generated into ``contract_errors.py`` from the committed artifacts' ABIs and
  ``error_hints.toml`` (``python -m backend.chain.compiler``, or ``--errors-only`` after editing a hint), so
  they are ordinary module attributes that mypy sees::

      from backend.chain.errors import SettlementLedgerNoConsent
      from backend.chain import errors
      except errors.SettlementLedgerNoConsent as exc: exc.conversion_id, exc.args_by_name["conversionId"]

  ``error_class(name)`` finds one by name. ``Error(string)`` reverts become ``RevertedWithReason``, panics
  ``Panic``, data matching no known error ``UnknownRevert``.
- Custom errors declared only by a contract outside KnowLedger (an ABI given to ``ChainClient.contract``,
  which calls ``register_abi``) decode to ``ForeignContractError``, carrying that error's ``error_spec`` and
  ``args_by_name``; an error we know statically keeps its own class whichever ABI declares it.

``decode_revert(data)`` maps raw revert data (the 4-byte selector and ABI-encoded arguments) to an instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address

from . import contract_errors
from .abi import abi_type
from .contract_errors import *  # noqa: F403  (the generated classes, listed in contract_errors.__all__)
from .contract_errors import ERRORS_BY_NAME, ERRORS_BY_SELECTOR
from .exceptions import (
    DEFAULT_HINT,
    PANIC_CODES,
    ChainError,
    ChainUnreachable,
    ContractReverted,
    DeploymentNotFound,
    ErrorSpec,
    ForeignContractError,
    InsufficientFunds,
    MissingKey,
    Panic,
    RevertedWithReason,
    TransactionFailed,
    TransactionTimeout,
    UnknownRevert,
    WrongChain,
)

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")

#: Custom errors of other contracts' ABIs (``register_abi``) that no generated class covers, by selector.
_FOREIGN: dict[bytes, ErrorSpec] = {}


def register_abi(abi: Sequence[Mapping[str, Any]], contract: str) -> None:
    """Decode the custom errors of another contract's ABI too, as ``ForeignContractError`` (errors with a
    generated class keep it)."""
    for entry in abi:
        if entry.get("type") != "error":
            continue
        spec = ErrorSpec.from_abi(entry, contract)
        if spec.selector in ERRORS_BY_SELECTOR:
            continue
        known = _FOREIGN.get(spec.selector)
        if known is not None:
            spec = ErrorSpec(known.name, known.inputs, tuple(dict.fromkeys(known.contracts + spec.contracts)))
        _FOREIGN[spec.selector] = spec


def error_class(name: str) -> type[ContractReverted]:
    """The class of a custom error by name; ``KeyError`` listing the known ones otherwise."""
    try:
        return ERRORS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no error named {name!r}; known: {', '.join(sorted(ERRORS_BY_NAME))}") from None


def selector_of(name: str) -> str:
    """``0x``-hex selector of the custom error ``name``."""
    spec = error_class(name).spec
    assert spec is not None
    return "0x" + spec.selector.hex()


def decode_revert(
    data: bytes | str | None, *, context: str | None = None, message: str | None = None
) -> ContractReverted:
    """The named exception for raw revert data (never raises itself)."""
    if isinstance(data, str):
        text = data[2:] if data.startswith(("0x", "0X")) else data
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
            message = message or data
    else:
        raw = bytes(data or b"")
    if len(raw) < 4:
        return UnknownRevert(raw, context=context, detail=message or "no revert data")
    selector, payload = raw[:4], raw[4:]
    if selector == ERROR_STRING_SELECTOR:
        try:
            (reason,) = abi_decode(["string"], payload)
        except Exception:  # malformed: keep the raw data
            return UnknownRevert(raw, context=context, detail=f"malformed Error(string) 0x{raw.hex()}")
        return RevertedWithReason(raw, (reason,), context=context)
    if selector == PANIC_SELECTOR:
        try:
            (code,) = abi_decode(["uint256"], payload)
        except Exception:
            code = -1
        return Panic(raw, (code,), context=context)
    cls = ERRORS_BY_SELECTOR.get(selector)
    spec = cls.spec if cls is not None else _FOREIGN.get(selector)
    if spec is None:
        return UnknownRevert(
            raw, context=context, detail=f"unknown error selector 0x{selector.hex()} (data 0x{raw.hex()})"
        )
    try:
        values = abi_decode([t for _, t in spec.inputs], payload)
    except Exception:
        return UnknownRevert(
            raw, context=context, detail=f"{spec.name} with undecodable arguments 0x{payload.hex()}"
        )
    fixed = tuple(_checksum_addresses(t, v) for (_, t), v in zip(spec.inputs, values, strict=True))
    if cls is None:
        return ForeignContractError(raw, fixed, spec=spec, context=context)
    return cls(raw, fixed, context=context)


def _checksum_addresses(type_: str, value: Any) -> Any:
    if type_ == "address":
        return str(to_checksum_address(value))
    if type_ == "address[]":
        return [str(to_checksum_address(v)) for v in value]
    return value


__all__ = [
    "DEFAULT_HINT",
    "ERRORS_BY_NAME",
    "ERRORS_BY_SELECTOR",
    "ERROR_STRING_SELECTOR",
    "PANIC_CODES",
    "PANIC_SELECTOR",
    "ChainError",
    "ChainUnreachable",
    "ContractReverted",
    "DeploymentNotFound",
    "ErrorSpec",
    "ForeignContractError",
    "InsufficientFunds",
    "MissingKey",
    "Panic",
    "RevertedWithReason",
    "TransactionFailed",
    "TransactionTimeout",
    "UnknownRevert",
    "WrongChain",
    "abi_type",
    "decode_revert",
    "error_class",
    "register_abi",
    "selector_of",
]
__all__ += contract_errors.__all__
