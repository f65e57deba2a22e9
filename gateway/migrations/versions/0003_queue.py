"""review queue: claims with leases, priorities, deadlines, expiry, approvals and comments

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import audit.db

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

_OLD_CHECK = "status IN ('pending', 'approved', 'rejected', 'expired')"
_NEW_CHECK = "status IN ('pending', 'claimed', 'approved', 'rejected', 'expired')"


def upgrade() -> None:
    with op.batch_alter_table("escalations", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint(op.f("ck_escalations_status"), type_="check")
        batch_op.add_column(sa.Column("requester_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.String(length=16), server_default="normal", nullable=False))
        batch_op.add_column(sa.Column("category", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("approvals_required", sa.Integer(), server_default="1", nullable=False))
        for name in ("deadline_at", "expires_at", "deadline_missed_at"):
            batch_op.add_column(sa.Column(name, audit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("claimed_by_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("lease_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", audit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("assigned_to", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("prompt_masked", sa.Text(), nullable=True))
        batch_op.create_check_constraint("status", _NEW_CHECK)
        batch_op.create_index(batch_op.f("ix_escalations_category"), ["category"], unique=False)

    op.create_table(
        "escalation_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("escalation_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor_key_id", sa.String(length=128), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=True),
        sa.Column("actor_role", sa.String(length=32), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalations.id"],
            name=op.f("fk_escalation_events_escalation_id_escalations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_events")),
    )
    with op.batch_alter_table("escalation_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalation_events_escalation_id"), ["escalation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("escalation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalation_events_escalation_id"))
    op.drop_table("escalation_events")
    op.execute("UPDATE escalations SET status = 'pending' WHERE status = 'claimed'")
    with op.batch_alter_table("escalations", schema=None, recreate="always") as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalations_category"))
        batch_op.drop_constraint(op.f("ck_escalations_status"), type_="check")
        for name in (
            "prompt_masked",
            "callback_url",
            "assigned_to",
            "lease_expires_at",
            "lease_id",
            "claimed_by_name",
            "claimed_by",
            "deadline_missed_at",
            "expires_at",
            "deadline_at",
            "approvals_required",
            "category",
            "priority",
            "requester_name",
        ):
            batch_op.drop_column(name)
        batch_op.create_check_constraint("status", _OLD_CHECK)
