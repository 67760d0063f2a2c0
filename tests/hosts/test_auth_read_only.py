"""Token checks read in a read-only transaction: no SQLite write lock for a plain check (a
gateway under a flood of token checks no longer queues every request on the writer), a write
only when ``last_used_at`` is stale, and a single-use token still counts exactly once."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from quayside.auth import service
from quayside.auth.service import LAST_USED_PRECISION, AuthFailed
from quayside.errors import LedgerError
from quayside.ledger import users
from quayside.ledger.db import read_scope, session_scope, unit_of_work
from quayside.ledger.models import ApiToken

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def last_used(engine: Engine, token_id: str) -> datetime | None:
    stored = users.get_token(engine, token_id)
    assert stored is not None
    return stored.last_used_at


def test_read_scope_reads_and_refuses_writes(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "ann")
    service.create_token(ledger_engine, "ann", description="laptop")
    with read_scope(ledger_engine) as session:
        row = session.scalars(select(ApiToken)).one()
    assert (row.user.name, row.description) == ("ann", "laptop")  # readable after the scope
    with pytest.raises(LedgerError, match="refused"), read_scope(ledger_engine) as session:
        session.execute(text("UPDATE api_tokens SET description = 'changed'"))
    with unit_of_work(ledger_engine, read_only=True) as session:
        assert session.scalars(select(ApiToken.description)).all() == ["laptop"]
    # the same pooled connections write again afterwards
    with session_scope(ledger_engine) as session:
        session.execute(text("UPDATE api_tokens SET description = 'ci'"))
    with read_scope(ledger_engine) as session:
        assert session.scalars(select(ApiToken.description)).all() == ["ci"]


def test_last_used_is_written_at_most_once_a_minute(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "ann")
    token = service.create_token(ledger_engine, "ann", now=T0)
    who = service.authenticate(ledger_engine, token, now=T0 + timedelta(hours=1))
    assert last_used(ledger_engine, who.token_id) == T0 + timedelta(hours=1)
    service.authenticate(ledger_engine, token, now=T0 + timedelta(hours=1, seconds=30))
    assert last_used(ledger_engine, who.token_id) == T0 + timedelta(hours=1)
    later = T0 + timedelta(hours=1) + LAST_USED_PRECISION
    service.authenticate(ledger_engine, token, now=later)
    assert last_used(ledger_engine, who.token_id) == later


def test_token_check_needs_no_write_lock(tmp_path: Path) -> None:
    """SQLite's database-wide write lock (PostgreSQL has none to wait for)."""
    from quayside.ledger.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    ledger_engine = make_engine(url)
    service.create_user(ledger_engine, "ann")
    token = service.create_token(ledger_engine, "ann")
    service.authenticate(ledger_engine, token)  # last_used_at is fresh now
    assert ledger_engine.url.database is not None
    writer = sqlite3.connect(ledger_engine.url.database, isolation_level=None, timeout=0.1)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        # with BEGIN IMMEDIATE this waited for the busy timeout (10 s) and then failed
        assert service.authenticate(ledger_engine, token).name == "ann"
        with pytest.raises(AuthFailed, match="unknown token"):
            service.authenticate(ledger_engine, token[:-4] + "0000")
    finally:
        writer.rollback()
        writer.close()
        ledger_engine.dispose()


def test_single_use_token_counts_once_under_a_race(ledger_engine: Engine) -> None:
    service.create_user(ledger_engine, "ann")
    token = service.issue_approval_token(ledger_engine, "ann", ttl_s=60)
    accepted: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(8)

    def check() -> None:
        start.wait()
        try:
            accepted.append(
                service.authenticate(ledger_engine, token, allow_approval_once=True).name
            )
        except AuthFailed as e:
            refused.append(e.message)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert accepted == ["ann"]
    assert len(refused) == 7 and all("already used" in m for m in refused)
