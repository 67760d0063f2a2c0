"""The audit log is append-only: the ORM refuses changes, and so does the database itself
(triggers from the migration) even for raw SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, delete, text, update
from sqlalchemy.exc import DBAPIError

from quayside.errors import LedgerError
from quayside.ledger import audit
from quayside.ledger.db import make_engine, migrate, session_scope
from quayside.ledger.models import AuditEvent


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


def test_inserts_are_allowed_by_raw_sql(ledger_engine: Engine) -> None:
    with ledger_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (at, actor, action, subject_type) "
                "VALUES (CURRENT_TIMESTAMP, 'ann', 'raw.insert', 'thing')"
            )
        )
    assert _count(ledger_engine) == 1


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
