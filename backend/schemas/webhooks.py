"""Webhooks: a partner's endpoint and the deliveries to it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeliveryStateName = Literal["pending", "delivered", "dead"]


class WebhookEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Where the notifications are POSTed: an ``https://`` URL (``http://`` only where the operator allows
    #: it), without credentials or a fragment.
    url: str = Field(min_length=8, max_length=2048, pattern=r"^[hH][tT][tT][pP][sS]?://")


class WebhookEndpointPublic(BaseModel):
    partner_id: str
    url: str
    created_at: str
    updated_at: str
    #: The signing secret (``whsec_…``): only in the answer that created or rotated it, shown once.
    secret: str | None = None
    #: After a rotation: until when deliveries are also signed with the replaced secret (a second ``v1``).
    previous_secret_valid_until: str | None = None


class DeliveryPublic(BaseModel):
    id: int
    #: The notification's id (``evt_…``), the same on every attempt: a receiver drops one it has seen.
    event_id: str
    #: ``conversion.accepted``, ``conversion.settled``, ``conversion.final``, ``conversion.reversed``,
    #: ``conversion.rejected``, ``conversion.reversal_refused`` or ``ping``.
    event: str
    partner_id: str
    conversion_id: int | None
    state: DeliveryStateName
    attempts: int
    #: When the next attempt is due (pending deliveries only).
    next_attempt_at: str | None
    #: The endpoint's last HTTP status, or None when it did not answer (the reason is in ``last_error``).
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryList(BaseModel):
    total: int
    items: list[DeliveryPublic]


class Replayed(BaseModel):
    #: How many dead deliveries were queued again.
    replayed: int
