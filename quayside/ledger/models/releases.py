"""Ledger tables of releases: apps, environments and hosts, each release with its per-host
outcomes, and the deploy lock of an app+environment."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quayside.ledger.models.base import Base, str_enum, utcnow


class ReleaseKind(StrEnum):
    deploy = "deploy"
    rollback = "rollback"
    image = "image"
    # an image built and pushed to a registry (quayside.flows.image_build): not something a
    # host serves; its rows keep each app's image versions (quayside.ledger.image_builds)
    image_build = "image-build"
    # an image copied by digest from one environment's registry to another's
    # (quayside.flows.image_promote): approval, copy figures and the image release it started;
    # what the hosts serve is that image release's row (which names the promotion)
    image_promote = "image-promote"
    config = "config"
    plugin = "plugin"
    hello = "hello"


class ReleaseStatus(StrEnum):
    pending = "pending"
    awaiting_approval = "awaiting_approval"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    rolled_back = "rolled_back"
    cancelled = "cancelled"
    expired = "expired"
    # its run died (crashed, killed, cancelled) before finishing it: the release's host rows
    # say what each host served when it was reconciled (quayside.release.reconcile)
    interrupted = "interrupted"

    @property
    def finished(self) -> bool:
        return self in TERMINAL_RELEASE_STATUSES


TERMINAL_RELEASE_STATUSES = frozenset(
    {
        ReleaseStatus.succeeded,
        ReleaseStatus.failed,
        ReleaseStatus.rolled_back,
        ReleaseStatus.cancelled,
        ReleaseStatus.expired,
        ReleaseStatus.interrupted,
    }
)


class HostStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    rolled_back = "rolled_back"
    # the host's ``current`` was found on this release after its run died: switched, never
    # verified (health check, post-switch hooks) by the run
    switched = "switched"


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    environments: Mapped[list[Environment]] = relationship(
        back_populates="app", cascade="all, delete-orphan"
    )


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("app_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    auto_triggers_paused: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_by: Mapped[str | None] = mapped_column(String(200))
    paused_at: Mapped[datetime | None]

    app: Mapped[App] = relationship(back_populates="environments", lazy="joined", innerjoin=True)

    @property
    def app_name(self) -> str:
        return self.app.name


class Host(Base):
    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    address: Mapped[str | None] = mapped_column(String(255))


class EnvironmentHost(Base):
    __tablename__ = "environment_hosts"

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )


class Release(Base):
    """One attempt to change what runs in an app's environment.

    ``previous_release_id`` is the release that was current when this one started (what a
    rollback of this release returns to). For ``kind == rollback``, ``rollback_of_id`` is the
    release being undone; when the rollback succeeds that release becomes ``rolled_back``.
    The current release of an environment is its latest ``succeeded`` release
    (:func:`quayside.ledger.release_queries.current_release`); it is derived, never stored.
    """

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[ReleaseKind] = mapped_column(str_enum(ReleaseKind))
    version: Mapped[str | None] = mapped_column(String(200), index=True)
    ref: Mapped[str | None] = mapped_column(String(255))
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    image_digest: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[ReleaseStatus] = mapped_column(str_enum(ReleaseStatus), index=True)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    previous_release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    rollback_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    artifact_location: Mapped[str | None] = mapped_column(Text)
    manifest_digest: Mapped[str | None] = mapped_column(String(128))
    summary: Mapped[dict[str, Any] | None]
    details: Mapped[dict[str, Any] | None]

    environment: Mapped[Environment] = relationship(lazy="joined", innerjoin=True)
    hosts: Mapped[list[ReleaseHost]] = relationship(
        back_populates="release",
        cascade="all, delete-orphan",
        order_by="ReleaseHost.host",
        lazy="selectin",
    )

    @property
    def app_name(self) -> str:
        return self.environment.app.name

    @property
    def env_name(self) -> str:
        return self.environment.name


class ReleaseHost(Base):
    """The outcome of one release on one host (the latest recorded step wins)."""

    __tablename__ = "release_hosts"
    __table_args__ = (UniqueConstraint("release_id", "host"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    host: Mapped[str] = mapped_column(String(200))
    status: Mapped[HostStatus] = mapped_column(str_enum(HostStatus))
    step: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(Text)
    bytes_sent: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # what the host's ``current`` pointed at when this row was written from the host's own
    # facts (a release directory id; migration 0006): set by a reconcile, None otherwise
    serves: Mapped[str | None] = mapped_column(String(200))

    release: Mapped[Release] = relationship(back_populates="hosts")


class DeployLock(Base):
    """The deploy lock of one app+environment: a lease held by one flow run until it is
    released or ``expires_at`` passes."""

    __tablename__ = "deploy_locks"

    app: Mapped[str] = mapped_column(String(200), primary_key=True)
    env: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
