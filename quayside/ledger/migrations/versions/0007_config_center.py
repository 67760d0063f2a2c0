"""Config center: config items and their append-only versions, variables and theirs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "config_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("environment", sa.String(length=200), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=1024), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("published_at", TS, nullable=True),
        sa.Column("published_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_items")),
        sa.UniqueConstraint(
            "project",
            "environment",
            "service",
            "filename",
            name=op.f("uq_config_items_project_environment_service_filename"),
        ),
    )
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("template", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["config_items.id"],
            name=op.f("fk_config_versions_item_id_config_items"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_versions")),
        sa.UniqueConstraint("item_id", "version", name=op.f("uq_config_versions_item_id_version")),
    )
    op.create_index(
        op.f("ix_config_versions_item_id"), "config_versions", ["item_id"], unique=False
    )
    op.create_table(
        "config_variables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("environment", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_variables")),
        sa.UniqueConstraint(
            "project",
            "environment",
            "name",
            name=op.f("uq_config_variables_project_environment_name"),
        ),
    )
    op.create_table(
        "config_variable_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variable_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("secret", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="value", nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["variable_id"],
            ["config_variables.id"],
            name=op.f("fk_config_variable_versions_variable_id_config_variables"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_variable_versions")),
        sa.UniqueConstraint(
            "variable_id", "version", name=op.f("uq_config_variable_versions_variable_id_version")
        ),
    )
    op.create_index(
        op.f("ix_config_variable_versions_variable_id"),
        "config_variable_versions",
        ["variable_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_config_variable_versions_variable_id"), table_name="config_variable_versions"
    )
    op.drop_table("config_variable_versions")
    op.drop_table("config_variables")
    op.drop_index(op.f("ix_config_versions_item_id"), table_name="config_versions")
    op.drop_table("config_versions")
    op.drop_table("config_items")
