"""What an approval request approves (version, plan hash), and who submitted each run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("version", sa.String(length=200), nullable=True))
    op.add_column("approval_requests", sa.Column("plan_hash", sa.String(length=64), nullable=True))
    op.create_table(
        "run_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("scope_kind", sa.String(length=16), nullable=False),
        sa.Column("minimum_role", sa.String(length=16), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("via", sa.String(length=50), nullable=False),
        sa.Column("app", sa.String(length=200), nullable=True),
        sa.Column("env", sa.String(length=200), nullable=True),
        sa.Column("scheduled_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_submissions")),
        sa.UniqueConstraint("flow_run_id", name=op.f("uq_run_submissions_flow_run_id")),
    )
    op.create_index(
        op.f("ix_run_submissions_principal"), "run_submissions", ["principal"], unique=False
    )
    op.create_index(op.f("ix_run_submissions_status"), "run_submissions", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run_submissions_status"), table_name="run_submissions")
    op.drop_index(op.f("ix_run_submissions_principal"), table_name="run_submissions")
    op.drop_table("run_submissions")
    # plain DROP COLUMN (SQLite >= 3.35, PostgreSQL): a batch copy of approval_requests would
    # drop the table and, with foreign keys on, cascade-delete its decisions
    for column in ("plan_hash", "version"):
        op.execute(f"ALTER TABLE approval_requests DROP COLUMN {column}")
