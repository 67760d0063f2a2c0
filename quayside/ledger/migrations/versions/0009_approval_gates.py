"""Approval requests keyed by gate: a run with two gates (a canary publish asks before the
canary and again before the rest) has a request, codes and decisions per gate; the rows so
far are their runs' only gate, ``release``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "approval_requests",
        sa.Column("gate", sa.String(length=64), server_default="release", nullable=False),
    )


def downgrade() -> None:
    # plain DROP COLUMN (SQLite >= 3.35, PostgreSQL): a batch copy of approval_requests would
    # drop the table and, with foreign keys on, cascade-delete its decisions
    op.execute("ALTER TABLE approval_requests DROP COLUMN gate")
