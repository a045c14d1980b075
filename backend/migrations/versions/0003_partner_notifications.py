"""partner notifications and disclosures: data exports, audiences, conversion events, webhooks

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08

Conversions recorded before this revision get their history in ``conversion_event`` from their current
state: ``accepted`` at their creation, and the later events at their last change (the exact times of the
intermediate steps were not kept before).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime

#: event → (time column, condition on the conversion row) for the backfill.
_BACKFILL = {
    "accepted": ("created_at", "1 = 1"),
    "settled": (
        "updated_at",
        "state IN ('settled', 'reversal_pending', 'final', 'reversed') AND tx_hash IS NOT NULL",
    ),
    "final": ("updated_at", "state = 'final'"),
    "reversed": ("updated_at", "state = 'reversed'"),
    "rejected": ("updated_at", "state = 'rejected'"),
}


def upgrade() -> None:
    op.create_table(
        "audience",
        sa.Column("id", _STR(length=40), nullable=False),
        sa.Column("partner_id", _STR(length=40), nullable=False),
        sa.Column("campaign", _STR(length=120), nullable=False),
        sa.Column("segment", _STR(length=120), nullable=True),
        sa.Column("named", sa.Integer(), nullable=False),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("consent_block", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", _STR(length=66), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audience", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audience_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "audience_member",
        sa.Column("audience_id", _STR(length=40), nullable=False),
        sa.Column("pseudonym", _STR(length=66), nullable=False),
        sa.ForeignKeyConstraint(["audience_id"], ["audience.id"]),
        sa.PrimaryKeyConstraint("audience_id", "pseudonym"),
    )

    op.create_table(
        "data_export",
        sa.Column("id", _STR(length=40), nullable=False),
        sa.Column("partner_id", _STR(length=40), nullable=False),
        sa.Column("pseudonym", _STR(length=66), nullable=False),
        sa.Column("consent_block", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("data_export", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_export_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_export_pseudonym"), ["pseudonym"], unique=False)

    op.create_table(
        "conversion_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", _STR(length=40), nullable=False),
        sa.Column("event", _STR(length=32), nullable=False),
        sa.Column("at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["conversion_id"], ["conversion.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversion_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversion_event_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_conversion_event_conversion_id"), ["conversion_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_conversion_event_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "webhook_endpoint",
        sa.Column("partner_id", _STR(length=40), nullable=False),
        sa.Column("url", _STR(length=2048), nullable=False),
        sa.Column("secret", _STR(length=80), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("partner_id"),
    )

    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", _STR(length=40), nullable=False),
        sa.Column("partner_id", _STR(length=40), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=True),
        sa.Column("event", _STR(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", _STR(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", _STR(length=500), nullable=True),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.Column("delivered_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(["conversion_id"], ["conversion.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_delivery_conversion_id"), ["conversion_id"], unique=False
        )
        batch_op.create_index("ix_webhook_delivery_due", ["state", "next_attempt_ms"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_delivery_partner_id"), ["partner_id"], unique=False)

    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recommendation_created_at"), ["created_at"], unique=False)

    for event, (column, condition) in _BACKFILL.items():
        op.execute(
            "INSERT INTO conversion_event (conversion_id, partner_id, event, at) "
            f"SELECT id, partner_id, '{event}', {column} FROM conversion WHERE {condition} ORDER BY id"
        )


def downgrade() -> None:
    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recommendation_created_at"))
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_partner_id"))
        batch_op.drop_index("ix_webhook_delivery_due")
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_conversion_id"))
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_endpoint")
    with op.batch_alter_table("conversion_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversion_event_partner_id"))
        batch_op.drop_index(batch_op.f("ix_conversion_event_conversion_id"))
        batch_op.drop_index(batch_op.f("ix_conversion_event_at"))
    op.drop_table("conversion_event")
    with op.batch_alter_table("data_export", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_export_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_data_export_partner_id"))
    op.drop_table("data_export")
    op.drop_table("audience_member")
    with op.batch_alter_table("audience", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audience_partner_id"))
    op.drop_table("audience")
