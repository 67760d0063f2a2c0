"""Ledger integrity: the audit log becomes a hash chain that no INSERT can overwrite or
backdate, and signed requests already accepted are remembered (replay protection shared by
every gateway process).

``audit_events`` gets ``prev_hash`` and ``hash`` (existing rows are chained here, in id order),
a unique index on ``prev_hash`` (no fork), and a BEFORE INSERT trigger refusing an id not above
the last one (``INSERT OR REPLACE`` would otherwise delete the event it collides with: SQLite
fires no DELETE trigger for that), a ``prev_hash`` other than the last event's hash, and an
``at`` earlier than the last event's. ``seen_requests`` holds what triggers accepted once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# The chain's hash function and lock key are the ones the code verifies with: this migration's
# job is to make the existing rows verify.
from quayside.ledger.audit_chain import CHAIN_LOCK_KEY, GENESIS, event_hash

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
AUDIT_MESSAGE = "audit_events is append-only"
INSERT_REFUSED = f"{AUDIT_MESSAGE}: INSERT refused"

# Recreated after the SQLite table rebuild (which drops a table's triggers), as in 0001.
SQLITE_APPEND_ONLY_TRIGGERS = [
    f"""
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}: DELETE refused'); END
    """,
]

SQLITE_CHAIN_TRIGGER = f"""
CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
BEGIN
    SELECT RAISE(ABORT, '{INSERT_REFUSED}: the id must be above the last event''s id')
    WHERE NEW.id IS NULL OR NEW.id <= (SELECT coalesce(max(id), 0) FROM audit_events);
    SELECT RAISE(ABORT, '{INSERT_REFUSED}: prev_hash must be the hash of the last event')
    WHERE NEW.prev_hash IS NOT coalesce(
        (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), '{GENESIS}');
    SELECT RAISE(ABORT, '{INSERT_REFUSED}: hash must be 64 hex digits')
    WHERE length(NEW.hash) IS NOT 64 OR NEW.hash GLOB '*[^0-9a-f]*';
    SELECT RAISE(ABORT, '{INSERT_REFUSED}: at is earlier than the last event''s (backdated)')
    WHERE julianday(NEW.at) IS NULL
       OR julianday(NEW.at) < (SELECT julianday(at) FROM audit_events ORDER BY id DESC LIMIT 1);
END
"""

POSTGRESQL_CHAIN_TRIGGER = [
    f"""
    CREATE FUNCTION audit_events_chain() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        last_id integer;
        last_hash text;
        last_at timestamptz;
    BEGIN
        -- one appender at a time (Quayside's flush holds the same lock already)
        PERFORM pg_advisory_xact_lock({CHAIN_LOCK_KEY});
        SELECT id, hash, at INTO last_id, last_hash, last_at
            FROM audit_events ORDER BY id DESC LIMIT 1;
        IF NEW.id IS NULL OR NEW.id <= coalesce(last_id, 0) THEN
            RAISE EXCEPTION '{INSERT_REFUSED}: id % is not above the last event''s id %',
                NEW.id, coalesce(last_id, 0) USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.prev_hash IS DISTINCT FROM coalesce(last_hash, '{GENESIS}') THEN
            RAISE EXCEPTION '{INSERT_REFUSED}: prev_hash must be the hash of the last event'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.hash IS NULL OR NEW.hash !~ '^[0-9a-f]{{64}}$' THEN
            RAISE EXCEPTION '{INSERT_REFUSED}: hash must be 64 hex digits'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF last_at IS NOT NULL AND NEW.at < last_at THEN
            RAISE EXCEPTION
                '{INSERT_REFUSED}: at % is earlier than the last event''s % (backdated)',
                NEW.at, last_at USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_chain()
    """,
]


def _chain_existing_events(bind: sa.Connection) -> None:
    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer()),
        sa.column("at", TS),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("subject_type", sa.String()),
        sa.column("subject_id", sa.String()),
        sa.column("details", sa.JSON()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    rows = bind.execute(
        sa.select(
            events.c.id,
            events.c.at,
            events.c.actor,
            events.c.action,
            events.c.subject_type,
            events.c.subject_id,
            events.c.details,
        ).order_by(events.c.id)
    ).all()
    prev_hash = GENESIS
    chained: list[dict[str, object]] = []
    for row in rows:
        digest = event_hash(
            id=row.id,
            at=row.at,  # naive UTC on SQLite, aware on PostgreSQL: both hash the same
            actor=row.actor,
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            details=row.details,
            prev_hash=prev_hash,
        )
        chained.append({"event_id": row.id, "new_prev_hash": prev_hash, "new_hash": digest})
        prev_hash = digest
    if chained:
        bind.execute(
            events.update()
            .where(events.c.id == sa.bindparam("event_id"))
            .values(prev_hash=sa.bindparam("new_prev_hash"), hash=sa.bindparam("new_hash")),
            chained,
        )


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"audit chain triggers for {dialect} are not written yet")
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(length=64), nullable=True))
    # Chaining the existing rows is an UPDATE, which the append-only triggers refuse.
    if dialect == "sqlite":
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    else:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete")
    _chain_existing_events(bind)
    with op.batch_alter_table("audit_events") as batch:  # SQLite: a table rebuild
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
    op.create_index(op.f("ix_audit_events_prev_hash"), "audit_events", ["prev_hash"], unique=True)
    if dialect == "sqlite":
        for statement in [*SQLITE_APPEND_ONLY_TRIGGERS, SQLITE_CHAIN_TRIGGER]:
            op.execute(statement)
    else:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete")
        for statement in POSTGRESQL_CHAIN_TRIGGER:
            op.execute(statement)

    op.create_table(
        "seen_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seen_requests")),
        sa.UniqueConstraint("kind", "digest", name=op.f("uq_seen_requests_kind_digest")),
    )
    op.create_index(op.f("ix_seen_requests_expires_at"), "seen_requests", ["expires_at"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index(op.f("ix_seen_requests_expires_at"), table_name="seen_requests")
    op.drop_table("seen_requests")
    op.execute(
        "DROP TRIGGER audit_events_chain" + (" ON audit_events" if dialect != "sqlite" else "")
    )
    if dialect == "postgresql":
        op.execute("DROP FUNCTION audit_events_chain()")
    op.drop_index(op.f("ix_audit_events_prev_hash"), table_name="audit_events")
    # Plain DROP COLUMN (SQLite >= 3.35): no table rebuild, the append-only triggers stay.
    for column in ("hash", "prev_hash"):
        op.execute(f"ALTER TABLE audit_events DROP COLUMN {column}")
