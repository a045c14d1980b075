"""Webhooks: a partner's endpoint and secret, its deliveries; the operator's view of what keeps failing,
and replays."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from backend.api.deps import OperatorDep, PartnerDep, SessionDep, WebhooksDep
from backend.schemas.common import RowId, errors
from backend.schemas.webhooks import (
    DeliveryList,
    DeliveryPublic,
    DeliveryStateName,
    Replayed,
    WebhookEndpointIn,
    WebhookEndpointPublic,
)
from backend.services.webhooks import DEFAULT_ROTATION_OVERLAP_S, MAX_ROTATION_OVERLAP_S

router = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=errors(401, 403))
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2**31)]


@router.put(
    "/webhooks",
    response_model=WebhookEndpointPublic,
    responses={201: {"model": WebhookEndpointPublic, "description": "Registered, with its secret"}},
)
def put_endpoint(
    body: WebhookEndpointIn,
    partner: PartnerDep,
    service: WebhooksDep,
    session: SessionDep,
    response: Response,
) -> WebhookEndpointPublic:
    """Register the endpoint this partner's notifications go to (201, with the signing secret, shown
    once), or change its URL (200, the secret unchanged). See docs/webhooks.md."""
    endpoint, created = service.configure(session, partner, body.url)
    if created:
        response.status_code = 201
    return endpoint


@router.get("/webhooks", response_model=WebhookEndpointPublic, responses=errors(401, 403, 404))
def get_endpoint(partner: PartnerDep, service: WebhooksDep, session: SessionDep) -> WebhookEndpointPublic:
    return service.get(session, partner)


@router.delete("/webhooks", response_model=WebhookEndpointPublic, responses=errors(401, 403, 404))
def delete_endpoint(partner: PartnerDep, service: WebhooksDep, session: SessionDep) -> WebhookEndpointPublic:
    """Stop notifications (those still queued go dead; the operator can replay them)."""
    return service.remove(session, partner)


@router.post(
    "/webhooks/secret",
    status_code=201,
    response_model=WebhookEndpointPublic,
    responses=errors(401, 403, 404, 422),
)
def rotate_secret(
    partner: PartnerDep,
    service: WebhooksDep,
    session: SessionDep,
    overlap_s: Annotated[int, Query(ge=0, le=MAX_ROTATION_OVERLAP_S)] = DEFAULT_ROTATION_OVERLAP_S,
) -> WebhookEndpointPublic:
    """A new signing secret (shown once), used from the next attempt on. For ``overlap_s`` seconds (default
    a day) every delivery also carries a ``v1`` signature made with the replaced secret, so the receiver
    switches over without refusing anything; ``overlap_s=0`` retires the old secret at once."""
    return service.rotate_secret(session, partner, overlap_s)


@router.post(
    "/webhooks/ping", status_code=202, response_model=DeliveryPublic, responses=errors(401, 403, 404)
)
def ping(partner: PartnerDep, service: WebhooksDep, session: SessionDep) -> DeliveryPublic:
    """Queue a signed ``ping`` notification, to test a receiver."""
    return service.ping(session, partner)


@router.get("/webhooks/deliveries", response_model=DeliveryList)
def partner_deliveries(
    partner: PartnerDep,
    service: WebhooksDep,
    session: SessionDep,
    state: DeliveryStateName | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DeliveryList:
    """This partner's notifications, newest first, with each one's state and last error."""
    return service.deliveries(session, partner.id, state, limit, offset)


@router.post(
    "/webhooks/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryPublic,
    responses=errors(401, 403, 404),
)
def partner_replay(
    delivery_id: RowId, partner: PartnerDep, service: WebhooksDep, session: SessionDep
) -> DeliveryPublic:
    """Send one of this partner's notifications again (due now, with a fresh budget of attempts)."""
    return service.replay(session, delivery_id, partner.id)


@router.get("/operator/webhooks/deliveries", response_model=DeliveryList)
def operator_deliveries(
    _: OperatorDep,
    service: WebhooksDep,
    session: SessionDep,
    partner_id: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    state: DeliveryStateName | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DeliveryList:
    """Every partner's notifications (``state=dead``: those that kept failing), newest first."""
    return service.deliveries(session, partner_id, state, limit, offset)


@router.post(
    "/operator/webhooks/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryPublic,
    responses=errors(401, 403, 404),
)
def operator_replay(
    delivery_id: RowId, _: OperatorDep, service: WebhooksDep, session: SessionDep
) -> DeliveryPublic:
    """Send a notification again (due now, with a fresh budget of attempts)."""
    return service.replay(session, delivery_id, None)


@router.post("/operator/webhooks/replay", status_code=202, response_model=Replayed)
def operator_replay_dead(
    _: OperatorDep,
    service: WebhooksDep,
    session: SessionDep,
    partner_id: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
) -> Replayed:
    """Queue every dead notification again (of one partner, or all)."""
    return service.replay_dead(session, partner_id)
