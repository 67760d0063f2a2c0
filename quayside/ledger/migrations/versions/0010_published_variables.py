"""The variable versions a config publish rendered with, kept on the item's published marker
(``config_items.published_variables``, name -> version), so the pull endpoint and
``config get --published --rendered`` answer what was published rather than the latest
variables. Markers moved before this migration keep NULL: readers take the variable versions
current at the marker's ``published_at``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("config_items", sa.Column("published_variables", sa.JSON(), nullable=True))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite >= 3.35, PostgreSQL): a batch copy of config_items would drop
    # the table its versions reference
    op.execute("ALTER TABLE config_items DROP COLUMN published_variables")
