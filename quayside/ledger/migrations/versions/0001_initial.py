"""Initial ledger schema: apps, environments, hosts, releases, per-host outcomes, approvals,
deploy locks and the append-only audit log (enforced by triggers on SQLite and PostgreSQL).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types as they were at this revision (migrations never import models).
TS = sa.DateTime(timezone=True)
RELEASE_KINDS = ("deploy", "rollback", "image", "config", "plugin", "hello")
RELEASE_STATUSES = (
    "pending",
    "awaiting_approval",
    "running",
    "succeeded",
    "failed",
    "rolled_back",
    "cancelled",
    "expired",
)
HOST_STATUSES = ("pending", "running", "succeeded", "failed", "skipped", "rolled_back")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")
DECISIONS = ("approve", "reject")


def _enum(name: str, values: Sequence[str], length: int = 32) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=False, length=length)


AUDIT_MESSAGE = "audit_events is append-only"

SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}: DELETE refused'); END
    """,
]

POSTGRESQL_TRIGGERS = [
    f"""
    CREATE FUNCTION audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{AUDIT_MESSAGE}: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
]


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("name", name=op.f("uq_apps_name")),
    )
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_hosts_name")),
    )
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "auto_triggers_paused", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("paused_by", sa.String(length=200), nullable=True),
        sa.Column("paused_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_environments_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("app_id", "name", name=op.f("uq_environments_app_id_name")),
    )
    op.create_index(op.f("ix_environments_app_id"), "environments", ["app_id"])
    op.create_table(
        "environment_hosts",
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_environment_hosts_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_environment_hosts_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("environment_id", "host_id", name=op.f("pk_environment_hosts")),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("releasekind", RELEASE_KINDS), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=True),
        sa.Column("ref", sa.String(length=255), nullable=True),
        sa.Column("commit_sha", sa.String(length=64), nullable=True),
        sa.Column("image_digest", sa.String(length=128), nullable=True),
        sa.Column("status", _enum("releasestatus", RELEASE_STATUSES), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("previous_release_id", sa.Integer(), nullable=True),
        sa.Column("rollback_of_id", sa.Integer(), nullable=True),
        sa.Column("artifact_location", sa.Text(), nullable=True),
        sa.Column("manifest_digest", sa.String(length=128), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_releases_environment_id_environments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["previous_release_id"],
            ["releases.id"],
            name=op.f("fk_releases_previous_release_id_releases"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rollback_of_id"],
            ["releases.id"],
            name=op.f("fk_releases_rollback_of_id_releases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
    )
    op.create_index(op.f("ix_releases_environment_id"), "releases", ["environment_id"])
    op.create_index(op.f("ix_releases_flow_run_id"), "releases", ["flow_run_id"])
    op.create_index(op.f("ix_releases_status"), "releases", ["status"])
    op.create_index(op.f("ix_releases_version"), "releases", ["version"])
    op.create_table(
        "release_hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("status", _enum("hoststatus", HOST_STATUSES), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("bytes_sent", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_hosts_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_hosts")),
        sa.UniqueConstraint("release_id", "host", name=op.f("uq_release_hosts_release_id_host")),
    )
    op.create_index(op.f("ix_release_hosts_release_id"), "release_hosts", ["release_id"])
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("app", sa.String(length=200), nullable=False),
        sa.Column("env", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("status", _enum("approvalstatus", APPROVAL_STATUSES), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.CheckConstraint(
            "required_approvals >= 1",
            name=op.f("ck_approval_requests_required_approvals_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_approval_requests_release_id_releases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    op.create_index(op.f("ix_approval_requests_flow_run_id"), "approval_requests", ["flow_run_id"])
    op.create_index(op.f("ix_approval_requests_release_id"), "approval_requests", ["release_id"])
    op.create_index(op.f("ix_approval_requests_status"), "approval_requests", ["status"])
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("decision", _enum("decision", DECISIONS, 16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["approval_requests.id"],
            name=op.f("fk_approval_decisions_request_id_approval_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_decisions")),
    )
    op.create_index(
        op.f("ix_approval_decisions_request_id"), "approval_decisions", ["request_id"]
    )
    op.create_table(
        "deploy_locks",
        sa.Column("app", sa.String(length=200), nullable=False),
        sa.Column("env", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.String(length=200), nullable=True),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("app", "env", name=op.f("pk_deploy_locks")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("subject_type", sa.String(length=50), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"])
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        statements = SQLITE_TRIGGERS
    elif dialect == "postgresql":
        statements = POSTGRESQL_TRIGGERS
    else:
        raise NotImplementedError(f"append-only triggers for {dialect} are not written yet")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Dropping the table drops its triggers; the PostgreSQL function goes after it.
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_action"), table_name="audit_events")
    op.drop_table("audit_events")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table("deploy_locks")
    op.drop_index(op.f("ix_approval_decisions_request_id"), table_name="approval_decisions")
    op.drop_table("approval_decisions")
    op.drop_index(op.f("ix_approval_requests_status"), table_name="approval_requests")
    op.drop_index(op.f("ix_approval_requests_release_id"), table_name="approval_requests")
    op.drop_index(op.f("ix_approval_requests_flow_run_id"), table_name="approval_requests")
    op.drop_table("approval_requests")
    op.drop_index(op.f("ix_release_hosts_release_id"), table_name="release_hosts")
    op.drop_table("release_hosts")
    op.drop_index(op.f("ix_releases_version"), table_name="releases")
    op.drop_index(op.f("ix_releases_status"), table_name="releases")
    op.drop_index(op.f("ix_releases_flow_run_id"), table_name="releases")
    op.drop_index(op.f("ix_releases_environment_id"), table_name="releases")
    op.drop_table("releases")
    op.drop_table("environment_hosts")
    op.drop_index(op.f("ix_environments_app_id"), table_name="environments")
    op.drop_table("environments")
    op.drop_table("hosts")
    op.drop_table("apps")
