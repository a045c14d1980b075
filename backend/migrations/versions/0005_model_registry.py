"""model registry: every model version with its artifact, metrics and gate; profiles name their version

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "model_version",
        sa.Column("version", S(length=64), nullable=False),
        sa.Column("model_name", S(length=40), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("source", S(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("error", S(), nullable=True),
        sa.Column("trained_on", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=False),
        sa.Column("product_ids", sa.JSON(), nullable=False),
        sa.Column("course_ids", sa.JSON(), nullable=False),
        sa.Column("artifact_sha256", S(length=64), nullable=True),
        sa.Column("artifact_bytes", sa.Integer(), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("version"),
    )
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_version_status"), ["status"], unique=False)
    op.create_table(
        "model_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", S(length=16), nullable=False),
        sa.Column("version", S(length=64), nullable=False),
        sa.Column("previous", S(length=64), nullable=True),
        sa.Column("actor", S(length=40), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_version", S(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.drop_column("model_version")
    op.drop_table("model_event")
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_version_status"))
    op.drop_table("model_version")
