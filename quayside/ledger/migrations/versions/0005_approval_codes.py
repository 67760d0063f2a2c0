"""Single-use approval codes for the Prefect UI's approval form (hashes only).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "approval_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("code_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("replaced_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["approval_requests.id"],
            name=op.f("fk_approval_codes_request_id_approval_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_codes")),
    )
    op.create_index(
        op.f("ix_approval_codes_request_id"), "approval_codes", ["request_id"], unique=False
    )
    op.create_index(
        op.f("ix_approval_codes_created_at"), "approval_codes", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_approval_codes_created_at"), table_name="approval_codes")
    op.drop_index(op.f("ix_approval_codes_request_id"), table_name="approval_codes")
    op.drop_table("approval_codes")
