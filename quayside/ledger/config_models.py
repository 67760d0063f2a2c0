"""Ledger tables of the config center (migration 0007; 0010 added
``config_items.published_variables``): config items with their append-only
versions, and per-environment variables with theirs.

A row of ``config_versions`` / ``config_variable_versions`` is never updated or deleted: an
edit is a new version, a restore is a new version with ``restored_from`` set. The only
mutable columns are an item's "published" marker (version, time, actor, and the variable
versions the published rendering used), which only the publish step moves
(:func:`quayside.config.items.mark_published`). Secret variable values are stored encrypted
(:mod:`quayside.config.secret_box`); this module never sees a plaintext secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quayside.ledger.models import Base, utcnow


class ConfigItem(Base):
    """A config file addressed as project / environment / service / filename."""

    __tablename__ = "config_items"
    __table_args__ = (UniqueConstraint("project", "environment", "service", "filename"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_version: Mapped[int | None] = mapped_column(Integer)
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(200))
    published_variables: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    """name -> version of the variables the published rendering used; NULL for a marker
    moved before migration 0010."""

    versions: Mapped[list[ConfigVersion]] = relationship(
        back_populates="item", order_by="ConfigVersion.version"
    )


class ConfigVersion(Base):
    """One saved version of a config item (append-only)."""

    __tablename__ = "config_versions"
    __table_args__ = (UniqueConstraint("item_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("config_items.id", ondelete="RESTRICT"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    template: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    author: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    restored_from: Mapped[int | None] = mapped_column(Integer)

    item: Mapped[ConfigItem] = relationship(back_populates="versions")


class ConfigVariable(Base):
    """A variable of one project's environment (what differs between environments)."""

    __tablename__ = "config_variables"
    __table_args__ = (UniqueConstraint("project", "environment", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ConfigVariableVersion]] = relationship(
        back_populates="variable", order_by="ConfigVariableVersion.version"
    )


class ConfigVariableVersion(Base):
    """One saved value of a variable (append-only). ``value`` is ciphertext when ``secret``;
    ``kind`` says whether ``value`` is the value itself or a Vault reference (``path#key``)."""

    __tablename__ = "config_variable_versions"
    __table_args__ = (UniqueConstraint("variable_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variable_id: Mapped[int] = mapped_column(
        ForeignKey("config_variables.id", ondelete="RESTRICT"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text)
    secret: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    kind: Mapped[str] = mapped_column(String(16), default="value", server_default="value")
    author: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    variable: Mapped[ConfigVariable] = relationship(back_populates="versions")
