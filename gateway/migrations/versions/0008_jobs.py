"""jobs: orchestrated jobs and their progress events (issue 8)

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import audit.db

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None

_JOB_INDEXES = ("request_id", "tenant", "key_id", "status", "held_request_id")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("max_steps", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=True),
        sa.Column("plan_sha256", sa.String(length=64), nullable=True),
        sa.Column("steps_json", sa.Text(), nullable=False),
        sa.Column("assets_json", sa.Text(), nullable=False),
        sa.Column("error_json", sa.Text(), nullable=True),
        sa.Column("held_request_id", sa.String(length=64), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", audit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    for column in _JOB_INDEXES:
        op.create_index(op.f(f"ix_jobs_{column}"), "jobs", [column], unique=False)
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("created_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    op.create_index(op.f("ix_job_events_job_id"), "job_events", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_events_job_id"), table_name="job_events")
    op.drop_table("job_events")
    for column in _JOB_INDEXES:
        op.drop_index(op.f(f"ix_jobs_{column}"), table_name="jobs")
    op.drop_table("jobs")
