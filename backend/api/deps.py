"""FastAPI dependencies: settings, the runtime, a database session, and the three kinds of caller.

- users: ``Authorization: Bearer <token>`` (a token the operator issued at sign-in; see the README for
  plugging in an OIDC provider instead);
- partners: ``X-API-Key: pk_…`` (stored as SHA-256);
- the operator (also the consent registrar): ``X-API-Key: op_…``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel import Session, select

from backend.core.config import Settings, get_settings
from backend.errors import Forbidden, ServiceNotReady, Unauthenticated
from backend.models import User
from backend.services.runtime import PartnerAuth, Runtime, key_hash


def get_runtime(request: Request) -> Runtime:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServiceNotReady("the service is starting")
    return runtime


def get_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Iterator[Session]:
    with Session(runtime.engine, expire_on_commit=False) as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def current_partner(runtime: RuntimeDep, x_api_key: Annotated[str | None, Header()] = None) -> PartnerAuth:
    if not x_api_key:
        raise Unauthenticated("missing X-API-Key header (a partner API key)")
    partner = runtime.partner_for_key(x_api_key)
    if partner is None:
        if runtime.is_operator_key(x_api_key):
            raise Forbidden("this endpoint is for partners; the operator key cannot act as a partner")
        raise Unauthenticated("unknown API key")
    return partner


def current_operator(runtime: RuntimeDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    if not x_api_key:
        raise Unauthenticated("missing X-API-Key header (the operator key)")
    if not runtime.is_operator_key(x_api_key):
        if runtime.partner_for_key(x_api_key) is not None:
            raise Forbidden("this endpoint is for the operator")
        raise Unauthenticated("unknown API key")


def current_user(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> User:
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
