"""The service's one error tree. Each error has a stable ``code`` and an HTTP status; one handler in
``backend.main`` turns them (and validation errors) into ``{"error": {"code", "message", "details"}}``.

Chain errors from ``backend.chain`` are mapped here too (:func:`from_chain_error`), so a revert reaches a
client as a 4xx naming what the chain refused, and an unreachable node as a 503: never a 500.
"""

from __future__ import annotations

from typing import Any

from backend.chain import (
    ChainError,
    ChainUnreachable,
    ContractReverted,
    InsufficientFunds,
    TransactionTimeout,
)
from backend.core.jsonable import to_jsonable


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthenticated(AppError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class ConsentRequired(AppError):
    """The user does not hold, on chain, the consent this request needs."""

    status_code = 403
    code = "consent_required"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class ProfileOutdated(AppError):
    """The learner's profile was built for another model version and cannot be derived again (it was
    uploaded, and the learner has no events)."""

    status_code = 409
    code = "profile_outdated"


class GateRefused(AppError):
    """The quality gate refused to promote a model version (``details`` has both scores)."""

    status_code = 409
    code = "quality_gate_refused"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(AppError):
    status_code = 422
    code = "invalid_request"


class ChainRefused(AppError):
    """The chain refused the transaction (a named contract error: bad signature, expired, replayed...)."""

    status_code = 422
    code = "chain_refused"


class ChainUnavailable(AppError):
    """The chain could not be reached: nothing that needs it is done (fail closed)."""

    status_code = 503
    code = "chain_unavailable"


class DatabaseUnavailable(AppError):
    """The database could not be reached: nothing was done (and nothing half-written)."""

    status_code = 503
    code = "database_unavailable"


class ServiceNotReady(AppError):
    status_code = 503
    code = "not_ready"


def from_chain_error(exc: ChainError, doing: str) -> AppError:
    """Map a chain-layer error to the API's tree; ``doing`` says what the request was trying."""
    if isinstance(exc, ChainUnreachable):
        return ChainUnavailable(f"{doing}: the chain is unreachable ({exc}); nothing was done, try again")
    if isinstance(exc, TransactionTimeout):
        return ChainUnavailable(f"{doing}: the transaction was not mined in time ({exc})")
    if isinstance(exc, ContractReverted):
        return ChainRefused(
            f"{doing}: the chain refused it: {exc}",
            chain_error=exc.error_spec.name if exc.error_spec is not None else type(exc).__name__,
            args=to_jsonable(dict(getattr(exc, "args_by_name", {}))),
        )
    if isinstance(exc, InsufficientFunds):
        return ChainUnavailable(f"{doing}: the service's signing account cannot pay for gas ({exc})")
    return ChainUnavailable(f"{doing}: {exc}")
