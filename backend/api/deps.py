"""FastAPI dependencies: settings, the runtime, a database session, and the three kinds of caller.

- users: ``Authorization: Bearer <token>`` (a token the operator issued at sign-in; see the README for
  plugging in an OIDC provider instead);
- partners: ``X-API-Key: pk_…`` (stored as SHA-256);
- the operator (also the consent registrar): ``X-API-Key: op_…``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session, select

from backend.errors import Forbidden, ServiceNotReady, Unauthenticated
from backend.models import User
from backend.services.runtime import PartnerAuth, Runtime, key_hash

T = TypeVar("T")


async def get_runtime(request: Request) -> Runtime:
    """(async: a plain attribute read, no need for a worker thread)"""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServiceNotReady("the service is starting")
    return runtime


async def get_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> AsyncIterator[Session]:
    """(async: opening a session does no I/O; a worker-thread hop per request would cost more)"""
    with Session(runtime.engine, expire_on_commit=False) as session:
        yield session


async def offload(runtime: Runtime, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` where it belongs: inline when the chain is in this process (its calls are CPU work under
    one lock; a worker thread would only fight the event loop for the GIL and starve), in a worker thread
    when the chain is a node on the network (its calls wait on I/O)."""
    if runtime.gateway.in_process:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]


async def current_partner(
    runtime: RuntimeDep, x_api_key: Annotated[str | None, Header()] = None
) -> PartnerAuth:
    if not x_api_key:
        raise Unauthenticated("missing X-API-Key header (a partner API key)")
    partner = runtime.partner_for_key(x_api_key)
    if partner is None:
        if runtime.is_operator_key(x_api_key):
            raise Forbidden("this endpoint is for partners; the operator key cannot act as a partner")
        raise Unauthenticated("unknown API key")
    return partner


async def current_operator(runtime: RuntimeDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    if not x_api_key:
        raise Unauthenticated("missing X-API-Key header (the operator key)")
    if not runtime.is_operator_key(x_api_key):
        if runtime.partner_for_key(x_api_key) is not None:
            raise Forbidden("this endpoint is for the operator")
        raise Unauthenticated("unknown API key")


async def current_user(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> User:
    """The signed-in user. To use an OIDC provider instead, verify its ID token here (issuer, audience,
    signature against the provider's JWKS) and look the user up by ``platform_user_id == claims["sub"]``."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthenticated("missing 'Authorization: Bearer <token>' header")
    token = authorization[7:].strip()
    user = session.exec(select(User).where(User.token_hash == key_hash(token))).first()
    if user is None or user.erased_at is not None:
        raise Unauthenticated("unknown or expired token")
    return user


PartnerDep = Annotated[PartnerAuth, Depends(current_partner)]
OperatorDep = Annotated[None, Depends(current_operator)]
UserDep = Annotated[User, Depends(current_user)]
