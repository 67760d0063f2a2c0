"""Who may not approve a request beyond its requester (an environment's
``approval.allow_editor_approval: false``: the authors of the config versions a publish
releases), with why - kept on the request so every answer path checks the same set.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("excluded_approvers", sa.JSON(), nullable=True))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite >= 3.35, PostgreSQL): a batch copy of approval_requests would
    # drop the table and, with foreign keys on, cascade-delete its decisions
    op.execute("ALTER TABLE approval_requests DROP COLUMN excluded_approvers")
