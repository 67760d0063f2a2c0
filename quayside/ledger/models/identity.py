"""Ledger tables of identity: users, their API tokens, spaces and role grants."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quayside.ledger.models.base import Base, str_enum, utcnow


class TokenPurpose(StrEnum):
    api = "api"
    approval_once = "approval-once"


class User(Base):
    """A person (or robot) known to Quayside. ``dingtalk_id`` is DingTalk's senderStaffId."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    dingtalk_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    is_super: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """An API token: only its id and a salted hash of its secret are stored
    (:mod:`quayside.auth.tokens`). ``approval-once`` tokens are consumed by their first use."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose, 16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    consumed_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class Space(Base):
    """A team's space (Walle's 空间): apps belong to one (``App.space`` in quayside.yaml)."""

    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


SPACE_LEVEL = "project IS NULL"
"""Where the partial unique index of space-level role grants applies."""


class RoleGrant(Base):
    """A role of a user in a space (``project`` NULL) or in one project (app) of it.

    Unique per (user, space, project); the space-level grant (NULL project) is kept unique by
    a partial index, since NULLs are distinct in a plain unique constraint.
    """

    __tablename__ = "role_grants"
    __table_args__ = (
        UniqueConstraint("user_id", "space_id", "project"),
        Index(
            "uq_role_grants_space_level",
            "user_id",
            "space_id",
            unique=True,
            sqlite_where=text(SPACE_LEVEL),
            # postgresql_where: added by add_postgresql_options (see there)
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    project: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    space: Mapped[Space] = relationship(lazy="joined", innerjoin=True)


def add_postgresql_options() -> None:
    """Give the space-level grant index its PostgreSQL ``WHERE`` (what migration 0002 created),
    once a PostgreSQL engine is made (:func:`quayside.ledger.db.make_engine`). Naming a
    ``postgresql_`` option when the class is defined would load SQLAlchemy's PostgreSQL
    dialect and its drivers on every import: 0.06-0.08 s of CPU in every CLI command on a
    SQLite ledger (``quayside releases`` among them)."""
    for index in Base.metadata.tables["role_grants"].indexes:
        if index.name == "uq_role_grants_space_level" and (
            index.dialect_options["postgresql"]["where"] is None
        ):
            index.dialect_kwargs["postgresql_where"] = text(SPACE_LEVEL)
