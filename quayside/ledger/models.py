"""Ledger models (SQLAlchemy 2 typed declarative), portable between SQLite and PostgreSQL.

Datetimes are timezone-aware UTC in Python on both backends (:class:`UTCDateTime`); enums are
Python ``StrEnum`` values stored as plain strings; JSON columns use :class:`sqlalchemy.JSON`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Mapper,
    ORMExecuteState,
    mapped_column,
    relationship,
)
from sqlalchemy.types import TypeDecorator

from quayside.errors import LedgerError

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC text and given back their UTC zone when read. Naive datetimes are refused on write.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores timezone-aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum(cls: type[StrEnum], length: int = 32) -> Enum:
    """A StrEnum stored as its string value (VARCHAR, no native enum type, no CHECK)."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


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


class ApprovalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"
    voided = "voided"  # what it approved changed (another plan, version or run)


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


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
    (:func:`quayside.ledger.releases.current_release`); it is derived, never stored.
    """

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[ReleaseKind] = mapped_column(_enum(ReleaseKind))
    version: Mapped[str | None] = mapped_column(String(200), index=True)
    ref: Mapped[str | None] = mapped_column(String(255))
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    image_digest: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[ReleaseStatus] = mapped_column(_enum(ReleaseStatus), index=True)
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
    status: Mapped[HostStatus] = mapped_column(_enum(HostStatus))
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


class ApprovalRequest(Base):
    __tablename__ = "approval_requests"
    __table_args__ = (
        CheckConstraint("required_approvals >= 1", name="required_approvals_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL"), index=True
    )
    app: Mapped[str] = mapped_column(String(200))
    env: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[ApprovalStatus] = mapped_column(_enum(ApprovalStatus), index=True)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # The policy the request was opened under (migration 0002), so every answer path (the
    # paused flow, the gateway's pre-approval, chat) checks the same thing. NULL on rows from
    # before 0002: checked with the production default (MASTER, no self-approval).
    space: Mapped[str | None] = mapped_column(String(200))
    approver_role: Mapped[str | None] = mapped_column(String(16))
    allow_self_approval: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # What the request approves (migration 0004): the gate accepts a request only for its own
    # flow run, app, env and this exact version; ``plan_hash`` binds a gate-opened request to
    # the plan it showed (a changed plan voids it). NULL on older rows: never accepted by a
    # gate, which opens a new request instead.
    version: Mapped[str | None] = mapped_column(String(200))
    plan_hash: Mapped[str | None] = mapped_column(String(64))
    # Who may not approve beyond the requester, user -> why (migration 0008): the authors of
    # the config versions a publish releases when the policy says
    # ``allow_editor_approval: false``. NULL: nobody but the requester.
    excluded_approvers: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    # Which gate of its run the request answers (migration 0009): a canary publish asks
    # before the canary (``release``, every run's first gate) and before the rest (``rest``);
    # each gate has its own request, codes and decisions.
    gate: Mapped[str] = mapped_column(String(64), default="release", server_default="release")

    decisions: Mapped[list[ApprovalDecision]] = relationship(
        back_populates="request",
        cascade="all, delete-orphan",
        order_by="ApprovalDecision.id",
        lazy="selectin",
    )


class ApprovalDecision(Base):
    """One person's answer to an approval request; ``valid`` is False (with ``reason``) when it
    was refused, e.g. a self-approval, a second vote or a vote after the request closed."""

    __tablename__ = "approval_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(String(200))
    decision: Mapped[Decision] = mapped_column(_enum(Decision, 16))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str | None] = mapped_column(Text)

    request: Mapped[ApprovalRequest] = relationship(back_populates="decisions")


class ApprovalCode(Base):
    """A single-use approval code (migration 0005): lets ``user`` answer ``request_id`` once
    in the Prefect UI's form without their long-lived token. Only a salted hash of the code is
    stored; it expires with the request, is replaced by a newer code for the same user and
    request, and is consumed by its first use (:mod:`quayside.ledger.approval_codes`)."""

    __tablename__ = "approval_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(String(200))
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    replaced_at: Mapped[datetime | None]


class SubmissionStatus(StrEnum):
    """Where a submitted run stands, as far as its authority goes."""

    submitted = "submitted"
    started = "started"
    refused = "refused"
    cancelled = "cancelled"


class RunSubmission(Base):
    """Who started a flow run through a trigger (gateway, chat, hooks, CLI with a token), and
    what for (migration 0004). The run checks its submitter's rights again when it starts (a
    scheduled run may start days later), and revoking a user's role cancels their pending
    scheduled runs. The principal is the authenticated caller, never a name a caller sent."""

    __tablename__ = "run_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_run_id: Mapped[str] = mapped_column(String(64), unique=True)
    deployment: Mapped[str] = mapped_column(String(200))
    # the rule it was authorized under (the catalogue's scope and minimum role), applied again
    # to the inventory and roles of the day when the run starts
    scope_kind: Mapped[str] = mapped_column(String(16))
    minimum_role: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(String(200), index=True)
    via: Mapped[str] = mapped_column(String(50))
    app: Mapped[str | None] = mapped_column(String(200))
    env: Mapped[str | None] = mapped_column(String(200))
    scheduled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[SubmissionStatus] = mapped_column(
        _enum(SubmissionStatus, 16), default=SubmissionStatus.submitted, index=True
    )
    reason: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """Append-only: the ORM refuses to update or delete these rows
    (:mod:`quayside.ledger.audit`) and so do database triggers created by the migrations.

    Each event is chained to the one before it (migration 0003): ``prev_hash`` is that event's
    ``hash`` and ``hash`` covers this event's fields and ``prev_hash``
    (:mod:`quayside.ledger.audit_chain`, which fills ``id``, ``at`` and both hashes at flush).
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any] | None]
    # unique: two events can never follow the same one (no fork of the chain)
    prev_hash: Mapped[str] = mapped_column(String(64), index=True, unique=True)
    hash: Mapped[str] = mapped_column(String(64))


APPEND_ONLY_HINT = "audit events are append-only; record a new event instead"


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_audit_change(_mapper: Mapper[Any], _connection: Any, target: AuditEvent) -> None:
    raise LedgerError(
        f"audit event {target.id} cannot be changed or deleted", hint=APPEND_ONLY_HINT
    )


@event.listens_for(AuditEvent, "before_insert")
def _refuse_unchained_insert(_mapper: Mapper[Any], _connection: Any, target: AuditEvent) -> None:
    if target.hash is None or target.prev_hash is None:
        raise LedgerError(
            f"audit event {target.action!r} was not chained to the audit log",
            hint="write audit events with quayside.ledger.audit.record in a ledger session "
            "(quayside.ledger.db.session_scope), which chains them when it flushes",
        )


def refuse_bulk_audit_changes(state: ORMExecuteState) -> None:
    """``do_orm_execute`` hook: refuse ORM bulk UPDATE/DELETE statements on AuditEvent, and
    every INSERT statement on it (``INSERT OR REPLACE`` and other prefixes would overwrite
    events; any bulk insert would skip the hash chain) (installed on
    :class:`quayside.ledger.db.LedgerSession`)."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    mapper = state.bind_mapper
    on_audit = mapper is not None and mapper.class_ is AuditEvent
    if not on_audit and getattr(state.statement, "table", None) is not AuditEvent.__table__:
        return
    if not state.is_insert:
        raise LedgerError("bulk UPDATE/DELETE of audit events refused", hint=APPEND_ONLY_HINT)
    prefixes = " ".join(str(p) for p, _dialect in getattr(state.statement, "_prefixes", ()))
    if prefixes:
        raise LedgerError(
            f"INSERT {prefixes} into the audit log refused: it could overwrite recorded events",
            hint=APPEND_ONLY_HINT,
        )
    raise LedgerError(
        "bulk INSERT into the audit log refused: it would skip the hash chain",
        hint="record each event with quayside.ledger.audit.record",
    )


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
    purpose: Mapped[TokenPurpose] = mapped_column(_enum(TokenPurpose, 16))
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


class SeenRequest(Base):
    """A signed request (or a message id) a trigger already accepted, kept until it could no
    longer be replayed (``expires_at``, the end of its signature window plus clock skew), so
    every gateway process and a restarted one refuse it (:mod:`quayside.ledger.replays`).
    ``digest`` is the SHA-256 of the value, unique per ``kind``."""

    __tablename__ = "seen_requests"
    __table_args__ = (UniqueConstraint("kind", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    digest: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


from quayside.ledger import config_models  # noqa: E402, F401  (the config center's tables)
