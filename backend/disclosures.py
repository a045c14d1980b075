"""Tables for what leaves the service toward partners, and the record of it.

- ``data_export``: a learner's pseudonymous features handed to a partner, with the block at which the
  learner's ``data_sharing`` consent was verified;
- ``audience`` and ``audience_member``: a marketing audience, the block at which every member's
  ``marketing_contact`` consent was verified, and who was in it;
- ``conversion_event``: each change of a conversion's state a partner can see (accepted, settled, final,
  reversed, rejected, reversal refused), written in the same transaction as the change;
- ``webhook_endpoint`` and ``webhook_delivery``: where a partner wants those changes pushed, with the
  secret that signs them, and the durable outbox of deliveries.

Every row names a pseudonym at most, never a platform user id; the audit (``backend/audit.py``) replays the
first two against the consent registry.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

from backend.models import utcnow


# ---------------------------------------------------------------------------------------------- disclosures
class DataExport(SQLModel, table=True):
    """One learner's features exported to a partner."""

    __tablename__ = "data_export"

    id: str = Field(primary_key=True, max_length=40)
    partner_id: str = Field(foreign_key="partner.id", index=True, max_length=40)
    pseudonym: str = Field(index=True, max_length=66)
    consent_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow)


class Audience(SQLModel, table=True):
    """A marketing audience: the learners among ``candidates`` who held ``marketing_contact`` for the
    partner at ``consent_block``."""

    id: str = Field(primary_key=True, max_length=40)
    partner_id: str = Field(foreign_key="partner.id", index=True, max_length=40)
    campaign: str = Field(max_length=120)
    segment: str | None = Field(default=None, max_length=120)
    #: How many pseudonyms the partner named (0 when it asked for a segment alone).
    named: int = 0
    candidates: int = 0
    size: int = 0
    consent_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    block_hash: str = Field(max_length=66)
    created_at: dt.datetime = Field(default_factory=utcnow)


class AudienceMember(SQLModel, table=True):
    __tablename__ = "audience_member"

    audience_id: str = Field(primary_key=True, foreign_key="audience.id", max_length=40)
    pseudonym: str = Field(primary_key=True, max_length=66)


# ---------------------------------------------------------------------------------------------- notifications
class ConversionEventKind(StrEnum):
    """The changes of a conversion's state a partner is told about."""

    ACCEPTED = "accepted"
    SETTLED = "settled"
    FINAL = "final"
    REVERSED = "reversed"
    REJECTED = "rejected"
    REVERSAL_REFUSED = "reversal_refused"


class ConversionEvent(SQLModel, table=True):
    """A change of a conversion's state, as its partner sees it (the funnel's history)."""

    __tablename__ = "conversion_event"

    id: int | None = Field(default=None, primary_key=True)
    conversion_id: int = Field(foreign_key="conversion.id", index=True)
    partner_id: str = Field(foreign_key="partner.id", index=True, max_length=40)
    event: str = Field(max_length=32)
    at: dt.datetime = Field(default_factory=utcnow, index=True)


class WebhookEndpoint(SQLModel, table=True):
    """Where a partner's notifications go, and the secret they are signed with.

    The secret is kept as it is, unlike API keys (kept as SHA-256 only): an API key is *checked*, which a
    hash allows; a webhook is *signed*, which needs the key itself (see docs/webhooks.md)."""

    __tablename__ = "webhook_endpoint"

    partner_id: str = Field(primary_key=True, foreign_key="partner.id", max_length=40)
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=80)
    #: After a rotation, the secret it replaced: deliveries are signed with both until
    #: ``previous_secret_until``, so a receiver can switch to the new one without refusing anything.
    previous_secret: str | None = Field(default=None, max_length=80)
    previous_secret_until: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)

    def signing_secrets(self, now: dt.datetime) -> list[str]:
        """The secrets a delivery at ``now`` is signed with: the current one, then the previous one while
        its overlap lasts."""
        until = self.previous_secret_until
        if self.previous_secret and until is not None:
            if until.tzinfo is None:  # SQLite gives naive datetimes back
                until = until.replace(tzinfo=dt.UTC)
            if now < until:
                return [self.secret, self.previous_secret]
        return [self.secret]


class DeliveryState(StrEnum):
    PENDING = "pending"  # due at ``next_attempt_ms`` (a first try, or a retry after a failure)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # every attempt failed: kept for the operator, who can replay it


class WebhookDelivery(SQLModel, table=True):
    """The webhook outbox: one notification to one partner, written with the change it reports."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "state", "next_attempt_ms"),)

    id: int | None = Field(default=None, primary_key=True)
    #: The notification's id (``evt_…``): the same on every attempt, for the receiver to drop repeats.
    event_id: str = Field(unique=True, max_length=40)
    partner_id: str = Field(foreign_key="partner.id", index=True, max_length=40)
    conversion_id: int | None = Field(default=None, foreign_key="conversion.id", index=True)
    event: str = Field(max_length=40)
    #: The JSON body, exactly as sent (and signed) on every attempt.
    body: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default=DeliveryState.PENDING, max_length=16)
    attempts: int = 0
    #: When the next attempt is due, in Unix milliseconds (also the lease of an attempt in flight).
    next_attempt_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    delivered_at: dt.datetime | None = None
