"""The deploy lock: acquire, contend, expire, renew, release, and a concurrent race where
exactly one of many threads wins (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from quayside.errors import LedgerError, LockHeldError
from quayside.ledger import audit, locks
from quayside.ledger.db import session_scope

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def test_acquire_contend_release(ledger_engine: Engine) -> None:
    lock = locks.acquire(
        ledger_engine, "web", "prod", "ann", flow_run_id="run-1", version="v2", lease_s=600, now=T0
    )
    assert (lock.holder, lock.version, lock.acquired_at) == ("ann", "v2", T0)
    assert lock.expires_at == T0 + timedelta(minutes=10)

    with pytest.raises(LockHeldError) as raised:
        locks.acquire(
            ledger_engine, "web", "prod", "bob", flow_run_id="run-2", version="v3",
            now=T0 + timedelta(minutes=1),
        )  # fmt: skip
    message = str(raised.value)
    assert "web/prod is locked by ann deploying v2 (flow run run-1)" in message
    assert T0.isoformat() in message
    assert (T0 + timedelta(minutes=10)).isoformat() in message
    assert raised.value.hint

    # another environment is independent
    locks.acquire(ledger_engine, "web", "staging", "bob", flow_run_id="run-2", now=T0)

    with pytest.raises(LockHeldError):
        locks.release(ledger_engine, "web", "prod", flow_run_id="run-2")
    assert locks.release(ledger_engine, "web", "prod", flow_run_id="run-1") is True
    assert locks.release(ledger_engine, "web", "prod", flow_run_id="run-1") is False
    assert locks.current_lock(ledger_engine, "web", "prod") is None
    taken = locks.acquire(ledger_engine, "web", "prod", "bob", flow_run_id="run-2", now=T0)
    assert taken.holder == "bob"

    actions = [e.action for e in audit.list_events(ledger_engine, subject_type="deploy_lock")]
    assert actions == ["lock.acquired", "lock.released", "lock.acquired", "lock.acquired"]


def test_expired_lease_is_taken_over(ledger_engine: Engine) -> None:
    locks.acquire(ledger_engine, "web", "prod", "ann", flow_run_id="run-1", lease_s=60, now=T0)
    assert locks.current_lock(ledger_engine, "web", "prod", now=T0) is not None
    assert locks.current_lock(ledger_engine, "web", "prod", now=T0 + timedelta(minutes=2)) is None
    later = T0 + timedelta(seconds=61)
    lock = locks.acquire(ledger_engine, "web", "prod", "bob", flow_run_id="run-2", now=later)
    assert (lock.holder, lock.flow_run_id, lock.acquired_at) == ("bob", "run-2", later)
    # the old holder can neither renew nor release it any more
    with pytest.raises(LockHeldError, match="locked by bob"):
        locks.renew(ledger_engine, "web", "prod", flow_run_id="run-1")
    with pytest.raises(LockHeldError):
        locks.release(ledger_engine, "web", "prod", flow_run_id="run-1")


def test_expiry_with_the_real_clock(ledger_engine: Engine) -> None:
    import time

    # a lease long enough that the refusal below happens inside it on a loaded machine (0.3 s
    # was not: with the audit chain's append, one acquire took longer than that on PostgreSQL)
    lease_s = 2.0
    locks.acquire(ledger_engine, "web", "prod", "ann", flow_run_id="run-1", lease_s=lease_s)
    taken = time.monotonic()  # the lease ends at most lease_s after this
    with pytest.raises(LockHeldError):
        locks.acquire(ledger_engine, "web", "prod", "bob", flow_run_id="run-2")
    time.sleep(max(0.0, lease_s + 0.1 - (time.monotonic() - taken)))
    assert locks.acquire(ledger_engine, "web", "prod", "bob", flow_run_id="run-2").holder == "bob"


def test_same_run_gets_its_lock_back_and_renews(ledger_engine: Engine) -> None:
    locks.acquire(ledger_engine, "web", "prod", "ann", flow_run_id="run-1", lease_s=60, now=T0)
    again = locks.acquire(
        ledger_engine, "web", "prod", "ann", flow_run_id="run-1", lease_s=60,
        now=T0 + timedelta(seconds=30),
    )  # fmt: skip
    assert again.expires_at == T0 + timedelta(seconds=90)
    renewed = locks.renew(
        ledger_engine, "web", "prod", flow_run_id="run-1", lease_s=600, now=T0 + timedelta(60)
    )
    assert renewed.expires_at == T0 + timedelta(60) + timedelta(seconds=600)
    with pytest.raises(LedgerError, match="nobody holds it"):
        locks.renew(ledger_engine, "web", "staging", flow_run_id="run-1")


def test_forced_release(ledger_engine: Engine) -> None:
    locks.acquire(ledger_engine, "web", "prod", "ann", flow_run_id="run-1", version="v1")
    assert locks.release(ledger_engine, "web", "prod", flow_run_id=None, actor="ops", force=True)
    event = audit.list_events(ledger_engine, subject_type="deploy_lock")[0]
    assert (event.action, event.actor) == ("lock.released", "ops")
    assert event.details == {
        "holder": "ann", "flow_run_id": "run-1", "version": "v1", "forced": True
    }  # fmt: skip


def test_lock_is_rolled_back_with_its_transaction(ledger_engine: Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(ledger_engine) as session:
        locks.acquire(session, "web", "prod", "ann", flow_run_id="run-1")
        raise RuntimeError("planning failed")
    assert locks.current_lock(ledger_engine, "web", "prod") is None
    assert audit.list_events(ledger_engine) == []


@pytest.mark.parametrize("expired", [False, True], ids=["fresh", "expired"])
def test_concurrent_acquirers_exactly_one_wins(ledger_engine: Engine, expired: bool) -> None:
    contenders = 8
    if expired:  # everyone races to take over the same expired lease
        locks.acquire(
            ledger_engine, "web", "prod", "dead", flow_run_id="dead", lease_s=1,
            now=T0 - timedelta(days=1),
        )  # fmt: skip
    barrier = threading.Barrier(contenders)
    winners: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def contend(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            locks.acquire(ledger_engine, "web", "prod", f"user-{n}", flow_run_id=f"run-{n}")
            winners.append(f"run-{n}")
        except LockHeldError:
            refused.append(f"run-{n}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(winners) == 1 and len(refused) == contenders - 1
    held = locks.current_lock(ledger_engine, "web", "prod")
    assert held is not None and held.flow_run_id == winners[0]
    acquired = audit.list_events(ledger_engine, action="lock.acquired")
    assert [e.details["flow_run_id"] for e in acquired if e.details][0] == winners[0]
    assert len(acquired) == (2 if expired else 1)
