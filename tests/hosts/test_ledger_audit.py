"""The audit log is append-only: the ORM refuses changes, and so does the database itself
(triggers from the migrations) even for raw SQL, on SQLite and PostgreSQL: no UPDATE, DELETE or
TRUNCATE, no INSERT that overwrites an event (``INSERT OR REPLACE``, upserts), leaves the hash
chain or is backdated (security review, issue 13 item 5)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Connection, Engine, Table, delete, insert, text, update
from sqlalchemy.exc import DBAPIError

from quayside.errors import LedgerError
from quayside.ledger import audit
from quayside.ledger.audit_chain import GENESIS, event_hash
from quayside.ledger.audit_verify import verify_chain
from quayside.ledger.db import make_engine, migrate, session_scope
from quayside.ledger.models import AuditEvent, utcnow

AUDIT_EVENTS = cast(Table, AuditEvent.__table__)


def _one_event(engine: Engine) -> int:
    with session_scope(engine) as session:
        event = audit.record(session, "ann", "test.recorded", "thing", 7, {"n": 1})
        session.flush()
        return event.id


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one())


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
    ],
)
def test_database_refuses_raw_update_and_delete(ledger_engine: Engine, statement: str) -> None:
    event_id = _one_event(ledger_engine)
    with pytest.raises(DBAPIError) as raised, ledger_engine.begin() as conn:
        conn.execute(text(statement))
    assert "append-only" in str(raised.value)
    with ledger_engine.connect() as conn:
        actor = conn.execute(
            text("SELECT actor FROM audit_events WHERE id = :id"), {"id": event_id}
        ).scalar_one()
    assert actor == "ann"


@pytest.mark.postgres
def test_postgresql_refuses_truncate(postgres_database: str) -> None:
    migrate(postgres_database)
    engine = make_engine(postgres_database)
    try:
        _one_event(engine)
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_events"))
        assert _count(engine) == 1
    finally:
        engine.dispose()


def _chained_row(conn: Connection, *, at: datetime, **overrides: Any) -> dict[str, Any]:
    """The values a raw INSERT needs to continue the chain (what an attacker could compute);
    ``overrides`` replace any of them, the hash included."""
    tail = conn.execute(text("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")).first()
    last_id, last_hash = (tail[0], tail[1]) if tail else (0, GENESIS)
    values: dict[str, Any] = {
        "id": last_id + 1,
        "at": at,
        "actor": "ann",
        "action": "raw.insert",
        "subject_type": "thing",
        "subject_id": None,
        "details": None,
        "prev_hash": last_hash,
    }
    forced_hash = overrides.pop("hash", None)
    values.update(overrides)
    values["hash"] = forced_hash or event_hash(**values)
    return values


def test_raw_insert_continuing_the_chain_is_accepted(ledger_engine: Engine) -> None:
    _one_event(ledger_engine)
    with ledger_engine.begin() as conn:
        conn.execute(insert(AUDIT_EVENTS).values(_chained_row(conn, at=utcnow())))
    assert _count(ledger_engine) == 2
    assert verify_chain(ledger_engine).count == 2


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("no chain columns", "above the last event's id"),
        ("id not above the last", "above the last event's id"),
        ("prev_hash of an older event (a fork)", "prev_hash must be the hash of the last event"),
        ("hash not hex", "hash must be 64 hex digits"),
    ],
)
def test_raw_insert_off_the_chain_is_refused(
    ledger_engine: Engine, case: str, fragment: str
) -> None:
    _one_event(ledger_engine)
    _one_event(ledger_engine)
    with pytest.raises(DBAPIError) as raised, ledger_engine.begin() as conn:
        if case == "no chain columns":  # what any INSERT written before migration 0003 does
            conn.execute(
                text(
                    "INSERT INTO audit_events (at, actor, action, subject_type) "
                    "VALUES (CURRENT_TIMESTAMP, 'ann', 'raw.insert', 'thing')"
                )
            )
        elif case == "id not above the last":
            conn.execute(insert(AUDIT_EVENTS).values(_chained_row(conn, at=utcnow(), id=2)))
        elif case.startswith("prev_hash"):
            first_hash = conn.execute(text("SELECT hash FROM audit_events WHERE id = 1")).scalar()
            values = _chained_row(conn, at=utcnow(), prev_hash=first_hash)
            conn.execute(insert(AUDIT_EVENTS).values(values))
        else:
            conn.execute(insert(AUDIT_EVENTS).values(_chained_row(conn, at=utcnow(), hash="x")))
    message = str(raised.value.orig)
    assert "audit_events is append-only: INSERT refused" in message
    assert fragment in message
    assert _count(ledger_engine) == 2
    assert verify_chain(ledger_engine).count == 2


OVERWRITES = {
    "insert or replace": "INSERT OR REPLACE INTO audit_events {columns} VALUES {values}",
    "replace into": "REPLACE INTO audit_events {columns} VALUES {values}",
    "upsert": "INSERT INTO audit_events {columns} VALUES {values} "
    "ON CONFLICT (id) DO UPDATE SET actor = excluded.actor, hash = excluded.hash",
}


@pytest.mark.parametrize("how", ["insert or replace", "replace into", "upsert"])
def test_database_refuses_overwriting_an_event(ledger_engine: Engine, how: str) -> None:
    """The attack of the review: raw SQL replacing event 1 by a forged one (with a hash
    recomputed for the forged content, as an attacker could)."""
    event_id = _one_event(ledger_engine)
    _one_event(ledger_engine)
    with ledger_engine.connect() as conn:
        at = conn.execute(text("SELECT at FROM audit_events WHERE id = 1")).scalar()
    forged: dict[str, Any] = {
        "id": event_id,
        "at": utcnow(),
        "actor": "mallory",
        "action": "test.recorded",
        "subject_type": "thing",
        "subject_id": "7",
        "details": None,
        "prev_hash": GENESIS,
    }
    forged["hash"] = event_hash(**forged)
    columns = "(id, at, actor, action, subject_type, subject_id, prev_hash, hash)"
    values = "(:id, :at, :actor, :action, :subject_type, :subject_id, :prev_hash, :hash)"
    dialect = ledger_engine.dialect.name
    statement = OVERWRITES[how].format(columns=columns, values=values)
    bound = {k: v for k, v in forged.items() if k != "details"}
    if dialect == "sqlite":
        bound["at"] = forged["at"].replace(tzinfo=None).isoformat(" ")
    with pytest.raises(DBAPIError) as raised, ledger_engine.begin() as conn:
        conn.execute(text(statement), bound)
    if dialect == "sqlite" or how == "upsert":
        assert "append-only: INSERT refused" in str(raised.value.orig)
    else:  # PostgreSQL has no REPLACE at all
        assert "syntax error" in str(raised.value.orig)
    with ledger_engine.connect() as conn:
        row = conn.execute(text("SELECT actor, at FROM audit_events WHERE id = 1")).one()
    assert tuple(row) == ("ann", at)
    assert _count(ledger_engine) == 2
    assert verify_chain(ledger_engine).count == 2


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        (insert(AuditEvent).prefix_with("OR REPLACE"), "INSERT OR REPLACE into the audit log"),
        (insert(AUDIT_EVENTS).prefix_with("OR REPLACE"), "INSERT OR REPLACE"),
        (insert(AuditEvent).prefix_with("OR IGNORE"), "INSERT OR IGNORE"),
        (insert(AuditEvent), "bulk INSERT into the audit log refused"),
    ],
    ids=["orm-or-replace", "core-table-or-replace", "orm-or-ignore", "orm-bulk"],
)
def test_orm_refuses_insert_statements(
    ledger_engine: Engine, statement: Any, fragment: str
) -> None:
    event_id = _one_event(ledger_engine)
    forged: dict[str, Any] = {
        "id": event_id,
        "at": utcnow(),
        "actor": "mallory",
        "action": "test.recorded",
        "subject_type": "thing",
        "prev_hash": GENESIS,
        "hash": "0" * 64,
    }
    with pytest.raises(LedgerError) as raised, session_scope(ledger_engine) as s:
        s.execute(statement.values(forged))
    assert fragment in str(raised.value)
    assert raised.value.hint
    with session_scope(ledger_engine) as s:
        event = s.get(AuditEvent, event_id)
        assert event is not None and event.actor == "ann"


def test_backdated_event_is_refused(ledger_engine: Engine) -> None:
    _one_event(ledger_engine)
    earlier = utcnow() - timedelta(days=1)
    with pytest.raises(LedgerError) as raised, session_scope(ledger_engine) as s:
        audit.record(s, "mallory", "approval.decided", "approval", 1, at=earlier)
    assert "backdated" in str(raised.value)
    assert "leave `at` unset" in (raised.value.hint or "")
    # and by raw SQL, with a chain-valid row an attacker computed: the database refuses it
    with pytest.raises(DBAPIError) as db_raised, ledger_engine.begin() as conn:
        conn.execute(insert(AUDIT_EVENTS).values(_chained_row(conn, at=earlier)))
    assert "backdated" in str(db_raised.value.orig)
    assert _count(ledger_engine) == 1


def test_event_times_never_go_backwards(ledger_engine: Engine) -> None:
    """An event stamped by a machine whose clock is ahead does not make the next event (from a
    machine on time) fail: that one gets the later time."""
    ahead = utcnow() + timedelta(minutes=5)
    with session_scope(ledger_engine) as s:
        audit.record(s, "ann", "a.ahead", "thing", 1, at=ahead)
    with session_scope(ledger_engine) as s:
        audit.record(s, "bob", "a.next", "thing", 2)
    events = audit.list_events(ledger_engine)
    assert [e.action for e in events] == ["a.next", "a.ahead"]
    assert events[0].at == events[1].at == ahead
    assert verify_chain(ledger_engine).count == 2


def test_orm_refuses_changing_an_event(ledger_engine: Engine) -> None:
    event_id = _one_event(ledger_engine)
    with pytest.raises(LedgerError, match="cannot be changed"), session_scope(ledger_engine) as s:
        event = s.get(AuditEvent, event_id)
        assert event is not None
        event.actor = "mallory"
    with session_scope(ledger_engine) as s:
        event = s.get(AuditEvent, event_id)
        assert event is not None and event.actor == "ann"


def test_orm_refuses_deleting_an_event(ledger_engine: Engine) -> None:
    event_id = _one_event(ledger_engine)
    with pytest.raises(LedgerError, match="cannot be changed"), session_scope(ledger_engine) as s:
        event = s.get(AuditEvent, event_id)
        s.delete(event)
    assert _count(ledger_engine) == 1


@pytest.mark.parametrize(
    "statement",
    [update(AuditEvent).values(actor="mallory"), delete(AuditEvent)],
    ids=["update", "delete"],
)
def test_orm_refuses_bulk_statements(ledger_engine: Engine, statement: object) -> None:
    _one_event(ledger_engine)
    with pytest.raises(LedgerError, match="bulk"), session_scope(ledger_engine) as s:
        s.execute(statement)  # type: ignore[call-overload]
    assert _count(ledger_engine) == 1


def test_list_events_filters(ledger_engine: Engine) -> None:
    with session_scope(ledger_engine) as s:
        audit.record(s, "ann", "a.one", "thing", 1)
        audit.record(s, "bob", "a.two", "thing", 2, {"k": [1, 2]})
        audit.record(s, "cat", "a.one", "other", 1)
    events = audit.list_events(ledger_engine, subject_type="thing")
    assert [e.action for e in events] == ["a.two", "a.one"]
    assert events[0].details == {"k": [1, 2]}
    assert events[0].at.tzinfo is not None
    assert [e.actor for e in audit.list_events(ledger_engine, action="a.one")] == ["cat", "ann"]
