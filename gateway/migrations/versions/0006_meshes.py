"""meshes: asynchronous 3D jobs (issue 7)

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import audit.db

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None

_INDEXED = ("request_id", "tenant", "key_id", "status")


def upgrade() -> None:
    op.create_table(
        "meshes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("guidance", sa.Float(), nullable=True),
        sa.Column("blob_digest", sa.String(length=64), nullable=True),
        sa.Column("manifest_digest", sa.String(length=64), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("manifest_id", sa.Text(), nullable=True),
        sa.Column("mamori_json", sa.Text(), nullable=False),
        sa.Column("created_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", audit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meshes")),
    )
    for column in _INDEXED:
        op.create_index(op.f(f"ix_meshes_{column}"), "meshes", [column], unique=False)


def downgrade() -> None:
    for column in _INDEXED:
        op.drop_index(op.f(f"ix_meshes_{column}"), table_name="meshes")
    op.drop_table("meshes")
