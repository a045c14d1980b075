"""The signed-in user: their consents (grant, revoke, state, history, receipts), export and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import RuntimeDep, SessionDep, UserDep, offload
from backend.errors import BadRequest, NotFound
from backend.models import ConsentAction, ConsentEvent, iso
from backend.services import consent as consent_service
from backend.services import users as user_service
from backend.services.gateway import PURPOSE_NAMES, purpose_from_name

router = APIRouter(prefix="/api/v1/me", tags=["me"])

PartnerId = Annotated[str, Path(min_length=1, max_length=40)]
PurposeName = Annotated[
    str, Path(description="profiling, product_recommendation, marketing_contact, data_sharing")
]


def _purpose(name: str) -> Any:
    purpose = purpose_from_name(name)
    if purpose is None:
        raise BadRequest(
            f"purpose: unknown purpose {name!r}; expected one of {', '.join(PURPOSE_NAMES.values())}",
            field="purpose",
        )
    return purpose


@router.get("")
def me(user: UserDep) -> dict[str, Any]:
    return {
        "id": user.id,
        "pseudonym": user.pseudonym,
        "wallet": user.wallet,
        "created_at": iso(user.created_at),
    }


@router.get("/consents")
def consents(user: UserDep, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    """Every partner × purpose, as the chain says now."""
    return {"pseudonym": user.pseudonym, "consents": consent_service.current_state(runtime, session, user)}


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Days until the consent expires (default ``KNOWLEDGER_CONSENT_DAYS``; at most 390).
    days: int | None = Field(default=None, ge=1, le=390)


@router.put("/consents/{partner_id}/{purpose}", status_code=201)
async def grant(
    partner_id: PartnerId,
    purpose: PurposeName,
    user: UserDep,
    runtime: RuntimeDep,
    session: SessionDep,
    body: Annotated[GrantBody | None, Body()] = None,
) -> dict[str, Any]:
    """Grant through the registrar: mined before this returns; the answer carries the transaction, the
    block and the receipt whose hash is on chain."""
    p = _purpose(purpose)
    partner = consent_service.get_partner(session, partner_id)
    event = await offload(
        runtime, consent_service.grant, runtime, session, user, partner, p, body.days if body else None
    )
    return consent_service.event_public(event, with_receipt=True)


@router.delete("/consents/{partner_id}/{purpose}")
async def revoke(
    partner_id: PartnerId, purpose: PurposeName, user: UserDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """Revoke; from the block this is mined in, the partner's requests are refused."""
    p = _purpose(purpose)
    partner = consent_service.get_partner(session, partner_id)
    event = await offload(runtime, consent_service.revoke, runtime, session, user, partner, p)
    return consent_service.event_public(event)


class TypedDataBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ConsentAction
    days: int | None = Field(default=None, ge=1, le=390)


@router.post("/consents/{partner_id}/{purpose}/typed-data")
def typed_data(
    partner_id: PartnerId,
    purpose: PurposeName,
    body: TypedDataBody,
    user: UserDep,
    runtime: RuntimeDep,
    session: SessionDep,
) -> dict[str, Any]:
    """For wallet users: the EIP-712 message to sign (``eth_signTypedData_v4``), then POST it with the
    signature to ``/api/v1/consents/relay``."""
    p = _purpose(purpose)
    partner = consent_service.get_partner(session, partner_id)
    return consent_service.typed_data_for(runtime, user, partner, p, body.action, body.days)


@router.get("/consents/history")
def history(user: UserDep, session: SessionDep) -> dict[str, Any]:
    return {"history": [consent_service.event_public(e) for e in consent_service.history(session, user)]}


@router.get("/receipts/{receipt_id}")
def receipt(
    receipt_id: Annotated[str, Path(max_length=40)], user: UserDep, session: SessionDep
) -> dict[str, Any]:
    from sqlmodel import select

    event = session.exec(
        select(ConsentEvent).where(
            ConsentEvent.receipt_id == receipt_id, ConsentEvent.pseudonym == user.pseudonym
        )
    ).first()
    if event is None or event.receipt is None:
        raise NotFound(f"unknown receipt {receipt_id!r}")
    return {
        "receipt": event.receipt,
        "receipt_hash": event.receipt_hash,
        "tx_hash": event.tx_hash,
        "block_number": event.block_number,
    }


@router.get("/export")
def export(user: UserDep, session: SessionDep) -> dict[str, Any]:
    """Everything held about you, as JSON."""
    return user_service.export(session, user)


class EraseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Must be the string "erase" (a confirmation, so no erasure happens by accident).
    confirm: str


@router.delete("")
def erase(body: EraseBody, user: UserDep, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    """Erase: revoke what the registrar granted, delete the profile and the per-user key."""
    if body.confirm != "erase":
        raise BadRequest('confirm: send {"confirm": "erase"} to erase your data', field="confirm")
    return user_service.erase(runtime, session, user)
