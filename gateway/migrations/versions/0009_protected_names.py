"""protected_names: the registry of protected people, brands and characters (issue 4)

Revision ID: 0009
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import audit.db

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "protected_names",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("aliases_json", sa.Text(), nullable=False),
        sa.Column("created_at", audit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protected_names")),
    )
    op.create_index(op.f("ix_protected_names_tenant"), "protected_names", ["tenant"], unique=False)
    op.create_table(
        "protected_names_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protected_names_revision")),
    )


def downgrade() -> None:
    op.drop_table("protected_names_revision")
    op.drop_index(op.f("ix_protected_names_tenant"), table_name="protected_names")
    op.drop_table("protected_names")
