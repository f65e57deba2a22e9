"""templates: versioned request templates and their lifecycle (issue 8)

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import audit.db

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("author_key_id", sa.String(length=32), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "version", name=op.f("pk_template_versions")),
    )
    for column in ("tenant", "state"):
        op.create_index(op.f(f"ix_template_versions_{column}"), "template_versions", [column], unique=False)


def downgrade() -> None:
    for column in ("tenant", "state"):
        op.drop_index(op.f(f"ix_template_versions_{column}"), table_name="template_versions")
    op.drop_table("template_versions")
