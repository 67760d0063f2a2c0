"""Interrupted releases: what each host served when a dead run's release was reconciled.

``releases.status`` and ``release_hosts.status`` are plain strings (no native enum, no CHECK),
so the new values (``interrupted``; ``switched``) need no DDL; ``release_hosts.serves`` holds
the release directory a host's ``current`` pointed at when its row was written from the
host's own facts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("release_hosts") as batch:
        batch.add_column(sa.Column("serves", sa.String(length=200), nullable=True))


def downgrade() -> None:
    # code from before 0006 cannot read the new values: they become the nearest old ones
    op.execute("UPDATE releases SET status = 'failed' WHERE status = 'interrupted'")
    op.execute("UPDATE release_hosts SET status = 'failed' WHERE status = 'switched'")
    with op.batch_alter_table("release_hosts") as batch:
        batch.drop_column("serves")
