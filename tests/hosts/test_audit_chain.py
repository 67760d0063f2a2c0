"""The audit log's hash chain, on SQLite and PostgreSQL: events are chained in order, existing
events are chained by the migration, concurrent writers never fork the chain, and
``quayside audit verify`` (run as a CLI) finds a row an attacker changed with the triggers
dropped (security review, issue 13 item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Select, Table, insert, select, text
from sqlalchemy.exc import DBAPIError

from quayside.ledger import audit
from quayside.ledger.audit_chain import GENESIS, event_hash
from quayside.ledger.audit_verify import AuditChainBroken, verify_chain
from quayside.ledger.db import make_engine, migrate, session_scope
from quayside.ledger.models import AuditEvent, utcnow
from testbed.platform import PROJECT_DIR

AUDIT_EVENTS = cast(Table, AuditEvent.__table__)


def _record(engine: Engine, *actions: str) -> None:
    with session_scope(engine) as s:
        for n, action in enumerate(actions):
            audit.record(s, "ann", action, "thing", n, {"n": n, "tags": ("a", "b")})


def _drop_append_only_triggers(engine: Engine) -> None:
    """What an attacker with the database file (or the table owner's login) can do."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for name in ("audit_events_no_update", "audit_events_no_delete", "audit_events_chain"):
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))


def select_event(event_id: int) -> Select[Any]:
    return select(AUDIT_EVENTS).where(AuditEvent.id == event_id)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {"QUAYSIDE_DATABASE_URL": url, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_events_are_chained_in_order(ledger_engine: Engine) -> None:
    assert verify_chain(ledger_engine).head == GENESIS
    _record(ledger_engine, "a.one", "a.two")
    _record(ledger_engine, "a.three")
    with session_scope(ledger_engine) as s:
        events = s.query(AuditEvent).order_by(AuditEvent.id).all()
    assert [e.id for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert events[0].at <= events[1].at <= events[2].at
    report = verify_chain(ledger_engine, page_size=2)  # crosses a page boundary
    assert (report.count, report.last_id, report.head) == (3, 3, events[2].hash)


def test_audit_verify_cli_finds_a_tampered_row(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    try:
        _record(engine, "release.started", "approval.decided", "release.finished")
        ok = cli(ledger_url, "audit", "verify")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("OK: 3 audit events verified")
        # the attacker rewrites who approved, with the triggers out of the way
        _drop_append_only_triggers(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
        broken = cli(ledger_url, "audit", "verify")
        assert broken.returncode == 1
        assert "error: audit event 2: its fields do not match its hash" in broken.stderr
        assert "hint: the audit log was changed outside Quayside" in broken.stderr
        assert "Traceback" not in broken.stderr
        # ... and recomputes that row's hash: the next event no longer follows it
        with engine.connect() as conn:
            row = conn.execute(select_event(2)).one()
        forged = event_hash(
            id=2,
            at=row.at,
            actor="mallory",
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            details=row.details,
            prev_hash=row.prev_hash,
        )
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE audit_events SET hash = :hash WHERE id = 2"), {"hash": forged}
            )
        with pytest.raises(AuditChainBroken) as relinked:
            verify_chain(engine)
        assert relinked.value.event_id == 3
        assert "its prev_hash is not the hash of event 2" in str(relinked.value)
    finally:
        engine.dispose()


def test_verify_finds_a_removed_event(ledger_engine: Engine) -> None:
    _record(ledger_engine, "a.one", "a.two", "a.three")
    _drop_append_only_triggers(ledger_engine)
    with ledger_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 2"))
    with pytest.raises(AuditChainBroken) as raised:
        verify_chain(ledger_engine)
    assert raised.value.event_id == 3
    assert "its prev_hash is not the hash of event 1" in str(raised.value)


def test_verify_finds_a_backdated_event(ledger_engine: Engine) -> None:
    """Inserted with the triggers dropped and a correctly computed hash: only its time is
    wrong."""
    _record(ledger_engine, "a.one")
    _drop_append_only_triggers(ledger_engine)
    with ledger_engine.begin() as conn:
        last = conn.execute(select_event(1)).one()
        row: dict[str, Any] = {
            "id": 2,
            "at": last.at - timedelta(hours=1),
            "actor": "mallory",
            "action": "approval.decided",
            "subject_type": "approval",
            "subject_id": "1",
            "details": None,
            "prev_hash": last.hash,
        }
        row["hash"] = event_hash(**row)
        conn.execute(insert(AUDIT_EVENTS).values(row))
    with pytest.raises(AuditChainBroken) as raised:
        verify_chain(ledger_engine)
    assert raised.value.event_id == 2
    assert "backdated" in str(raised.value)


def test_concurrent_writers_do_not_fork_the_chain(ledger_url: str) -> None:
    """Four writers (each its own engine, like four processes) append 10 events each."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        engine = make_engine(ledger_url)
        try:
            for i in range(10):
                _record(engine, f"w{n}.e{i}")
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    engine = make_engine(ledger_url)
    try:
        report = verify_chain(engine)
    finally:
        engine.dispose()
    assert (report.count, report.last_id) == (40, 40)


@pytest.mark.postgres
def test_postgresql_a_writer_on_a_stale_snapshot_cannot_fork(postgres_database: str) -> None:
    """A raw writer in REPEATABLE READ computes its row from a tail another transaction has
    since extended: the trigger (on the stale snapshot) cannot see it, the unique prev_hash
    index refuses the fork."""
    migrate(postgres_database)
    engine = make_engine(postgres_database)
    try:
        _record(engine, "a.one")
        with engine.connect() as stale:
            stale.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            tail = stale.execute(select_event(1)).one()
            _record(engine, "a.two")  # commits while the stale transaction is open
            row: dict[str, Any] = {
                "id": 3,
                "at": utcnow(),
                "actor": "mallory",
                "action": "fork",
                "subject_type": "thing",
                "subject_id": None,
                "details": None,
                "prev_hash": tail.hash,
            }
            row["hash"] = event_hash(**row)
            with pytest.raises(DBAPIError, match="ix_audit_events_prev_hash"):
                stale.execute(insert(AUDIT_EVENTS).values(row))
        assert verify_chain(engine).count == 2
    finally:
        engine.dispose()


def test_migration_chains_existing_events(empty_ledger_url: str) -> None:
    migrate(empty_ledger_url, "0002")
    engine = make_engine(empty_ledger_url)
    try:
        with engine.begin() as conn:  # events written before the chain existed
            conn.execute(
                text(
                    "INSERT INTO audit_events (at, actor, action, subject_type, details) "
                    "VALUES (CURRENT_TIMESTAMP, 'ann', 'old.raw', 'thing', NULL)"
                )
            )
            conn.execute(
                insert(AUDIT_EVENTS).values(
                    at=utcnow(),
                    actor="bob",
                    action="old.orm",
                    subject_type="thing",
                    subject_id="7",
                    details={"k": [1, 2.5, "ü"]},
                )
            )
    finally:
        engine.dispose()
    migrate(empty_ledger_url)
    engine = make_engine(empty_ledger_url)
    try:
        assert verify_chain(engine).count == 2
        _record(engine, "new.event")
        assert verify_chain(engine).count == 3
        # the SQLite table rebuild kept the append-only triggers
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 1"))
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events WHERE id = 1"))
    finally:
        engine.dispose()
