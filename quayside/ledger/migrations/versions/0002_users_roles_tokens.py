"""Users, API tokens, spaces and role grants; the approval policy on approval requests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
TOKEN_PURPOSES = ("api", "approval-once")
APPROVAL_POLICY_COLUMNS = ("space", "approver_role", "allow_self_approval")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("dingtalk_id", sa.String(length=200), nullable=True),
        sa.Column("is_super", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
        sa.UniqueConstraint("dingtalk_id", name=op.f("uq_users_dingtalk_id")),
    )
    op.create_table(
        "spaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spaces")),
        sa.UniqueConstraint("name", name=op.f("uq_spaces_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                *TOKEN_PURPOSES,
                name="tokenpurpose",
                native_enum=False,
                create_constraint=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("consumed_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_id", name=op.f("uq_api_tokens_token_id")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "role_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("space_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_role_grants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["space_id"],
            ["spaces.id"],
            name=op.f("fk_role_grants_space_id_spaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_grants")),
        sa.UniqueConstraint(
            "user_id", "space_id", "project", name=op.f("uq_role_grants_user_id_space_id_project")
        ),
    )
    op.create_index(op.f("ix_role_grants_user_id"), "role_grants", ["user_id"])
    op.create_index(op.f("ix_role_grants_space_id"), "role_grants", ["space_id"])
    # NULLs are distinct in a unique constraint: one space-level grant per user and space
    op.create_index(
        "uq_role_grants_space_level",
        "role_grants",
        ["user_id", "space_id"],
        unique=True,
        sqlite_where=sa.text("project IS NULL"),
        postgresql_where=sa.text("project IS NULL"),
    )
    # Plain ALTER TABLE ADD/DROP COLUMN (SQLite >= 3.35 has both): a batch table rebuild on
    # SQLite would DROP approval_requests, and its ON DELETE CASCADE would take the decisions.
    op.add_column("approval_requests", sa.Column("space", sa.String(length=200), nullable=True))
    op.add_column(
        "approval_requests", sa.Column("approver_role", sa.String(length=16), nullable=True)
    )
    op.add_column(
        "approval_requests",
        sa.Column("allow_self_approval", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    for column in reversed(APPROVAL_POLICY_COLUMNS):
        op.execute(f"ALTER TABLE approval_requests DROP COLUMN {column}")
    op.drop_index("uq_role_grants_space_level", table_name="role_grants")
    op.drop_index(op.f("ix_role_grants_space_id"), table_name="role_grants")
    op.drop_index(op.f("ix_role_grants_user_id"), table_name="role_grants")
    op.drop_table("role_grants")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("spaces")
    op.drop_table("users")
