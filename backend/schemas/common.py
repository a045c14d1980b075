"""Shapes shared by every area: the error body and the helper routes use to declare their errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, Field

#: The largest id or timestamp the API takes: 2^53 - 1, the largest integer every JSON client (JavaScript
#: included) reads exactly, and well inside the database's BIGINT (a larger one is a 422, never a 500).
MAX_ID = 2**53 - 1
#: A row id in a path.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
#: An on-chain pseudonym or wallet subject (bytes32): 0x and 64 hex digits.
SUBJECT_PATTERN = r"^0x[0-9a-fA-F]{64}$"
BYTES32_PATTERN = SUBJECT_PATTERN
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
#: An ECDSA signature in hex: 65 bytes ``r‖s‖v`` (v 0, 1, 27 or 28) or EIP-2098's 64-byte ``r‖vs``.
SIGNATURE_PATTERN = r"^(0x)?[0-9a-fA-F]{128}(00|01|1[bB]|1[cC])?$"
UINT8_MAX = 2**8 - 1
UINT24_MAX = 2**24 - 1
UINT32_MAX = 2**32 - 1
UINT40_MAX = 2**40 - 1


class ErrorDetail(BaseModel):
    #: A stable machine-readable code (``invalid_request``, ``consent_required``, ``chain_unavailable``...).
    code: str
    #: What was wrong and what to do about it, in words.
    message: str
    #: Structured context: the field at fault, the missing purposes, the contract error and its arguments.
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """Every refusal: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


_REASONS = {
    400: "Malformed request (bad JSON, or a field the service cannot use)",
    401: "Missing or unknown credential",
    403: "Not allowed for this credential, or the learner's consent is missing on chain",
    404: "Unknown id, or one that belongs to someone else",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "A field fails validation, or the chain refused the transaction (named contract error)",
    503: "The chain, the database or the model is unavailable: nothing was done",
}

#: The tags of the API's tagged unions (e.g. a relay's ``action``). Validation errors name fields by their
#: path; pydantic puts the tag in that path, which says nothing to a client, so the error handler drops it.
UNION_TAGS: set[str] = set()

#: Every route can answer these: bad JSON or fields (400/422) and oversized bodies (413).
ALWAYS = (400, 413, 422)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error statuses it can return, each with the error body."""
    return {
        code: {"model": ErrorResponse, "description": _REASONS[code]}
        for code in sorted(set(codes) | set(ALWAYS))
    }


def _integer(value: Any) -> Any:
    """JSON Schema's ``integer``: any number without a fractional part (``10`` and ``10.0``), never a
    boolean or a string (``true`` is not the number 1)."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("expected an integer")
    return value


#: The validator of :data:`JsonInt`, for ``Annotated[int, Field(ge=…, le=…), INTEGER]`` where the bounds must
#: sit inside ``Annotated`` (an optional field): placed before it, they reach the JSON schema.
INTEGER = BeforeValidator(_integer)
#: An integer field as JSON Schema means it (see :func:`_integer`); bounds go on the field's ``Field``.
JsonInt = Annotated[int, INTEGER]
