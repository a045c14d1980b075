"""ingestion: the platform's events, erased learners, batch jobs; catalogue and learner attributes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "learning_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", S(length=64), nullable=False),
        sa.Column("user_id", S(), nullable=False),
        sa.Column("item_id", S(length=64), nullable=False),
        sa.Column("event", S(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("learning_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_learning_event_user_id"), ["user_id"], unique=False)
    op.create_table(
        "erased_learner",
        sa.Column("digest", S(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "ingest_job",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("owner", S(length=40), nullable=False),
        sa.Column("table_name", S(length=20), nullable=False),
        sa.Column("source", S(length=200), nullable=False),
        sa.Column("status", S(length=20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("profiles_updated", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("knowledge_item", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=S(length=60), type_=S(length=64), existing_nullable=False)
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("description", S(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("price", sa.Float(), nullable=False, server_default="0"))
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.add_column(sa.Column("min_premium", sa.Float(), nullable=False, server_default="0"))
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("age_band", S(length=8), nullable=True))
        batch_op.add_column(sa.Column("region", S(length=40), nullable=True))
        batch_op.add_column(sa.Column("life_stage", S(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("life_stage")
        batch_op.drop_column("region")
        batch_op.drop_column("age_band")
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_column("min_premium")
    with op.batch_alter_table("knowledge_item", schema=None) as batch_op:
        batch_op.drop_column("price")
        batch_op.drop_column("description")
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("id", existing_type=S(length=64), type_=S(length=60), existing_nullable=False)
    op.drop_table("ingest_job")
    op.drop_table("erased_learner")
    with op.batch_alter_table("learning_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_learning_event_user_id"))
    op.drop_table("learning_event")
