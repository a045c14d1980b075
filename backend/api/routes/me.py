"""The signed-in user: their consents (grant, revoke, state, history, receipts), export and erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from backend.api.deps import ConsentDep, GatewayDep, LearnerViewDep, SessionDep, UserDep, UsersDep, offload
from backend.schemas.common import errors
from backend.schemas.consent import (
    ConsentChange,
    ConsentEventPublic,
    ConsentHistory,
    ConsentState,
    EraseBody,
    GrantBody,
    PurposeName,
    ReceiptPublic,
    TypedDataBody,
    TypedDataPublic,
)
from backend.schemas.users import Erased, Export, LearnerProfileView, Me
from backend.services.users import me as me_of

router = APIRouter(prefix="/api/v1/me", tags=["me"], responses=errors(401))

PartnerId = Annotated[str, Path(min_length=1, max_length=40)]
Purpose = Annotated[PurposeName, Path(description="the purpose's API name")]


@router.get("", response_model=Me)
def me(user: UserDep) -> Me:
    return me_of(user)


@router.get("/profile", response_model=LearnerProfileView)
def profile(user: UserDep, view: LearnerViewDep, session: SessionDep) -> LearnerProfileView:
    """Your learning profile: your segment, topics and propensities, and for each partner you let recommend
    products, what it would be shown and the courses of yours behind each reason (partners see topics and
    keywords only)."""
    return view.profile(session, user)


@router.get("/consents", response_model=ConsentState, responses=errors(503))
def consents(user: UserDep, consent: ConsentDep, session: SessionDep) -> ConsentState:
    """Every partner × purpose, as the chain says now."""
    return consent.state(session, user)


@router.put(
    "/consents/{partner_id}/{purpose}",
    status_code=201,
    response_model=ConsentChange,
    responses=errors(404, 409, 503),
)
async def grant(
    partner_id: PartnerId,
    purpose: Purpose,
    user: UserDep,
    consent: ConsentDep,
    gateway: GatewayDep,
    session: SessionDep,
    body: Annotated[GrantBody | None, Body()] = None,
) -> ConsentChange:
    """Grant through the registrar: mined before this returns; the answer carries the transaction, the
    block and the receipt whose hash is on chain."""
    days = body.days if body else None
    return await offload(gateway, consent.grant, session, user, partner_id, purpose.value, days)


@router.delete(
    "/consents/{partner_id}/{purpose}", response_model=ConsentEventPublic, responses=errors(404, 409, 503)
)
async def revoke(
    partner_id: PartnerId,
    purpose: Purpose,
    user: UserDep,
    consent: ConsentDep,
    gateway: GatewayDep,
    session: SessionDep,
) -> ConsentEventPublic:
    """Revoke; from the block this is mined in, the partner's requests are refused."""
    return await offload(gateway, consent.revoke, session, user, partner_id, purpose.value)


@router.post(
    "/consents/{partner_id}/{purpose}/typed-data",
    response_model=TypedDataPublic,
    responses=errors(404, 409, 503),
)
def typed_data(
    partner_id: PartnerId,
    purpose: Purpose,
    body: TypedDataBody,
    user: UserDep,
    consent: ConsentDep,
    session: SessionDep,
) -> TypedDataPublic:
    """For wallet users: the EIP-712 message to sign (``eth_signTypedData_v4``), then POST it with the
    signature to ``/api/v1/consents/relay``."""
    return consent.typed_data(session, user, partner_id, purpose.value, body.action, body.days)


@router.get("/consents/history", response_model=ConsentHistory)
def history(user: UserDep, consent: ConsentDep, session: SessionDep) -> ConsentHistory:
    return consent.history(session, user)


@router.get("/receipts/{receipt_id}", response_model=ReceiptPublic, responses=errors(404))
def receipt(
    receipt_id: Annotated[str, Path(max_length=40)], user: UserDep, consent: ConsentDep, session: SessionDep
) -> ReceiptPublic:
    return consent.receipt(session, user, receipt_id)


@router.get("/export", response_model=Export)
def export(user: UserDep, users: UsersDep, session: SessionDep) -> Export:
    """Everything held about you, as JSON."""
    return users.export(session, user)


@router.delete("", response_model=Erased, responses=errors(503))
def erase(body: EraseBody, user: UserDep, users: UsersDep, session: SessionDep) -> Erased:
    """Erase: revoke what the registrar granted, delete the profile and the per-user key. Send
    ``{"confirm": "erase"}``."""
    return users.erase(session, user)
