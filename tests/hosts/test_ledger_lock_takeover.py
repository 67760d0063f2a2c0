"""A lock whose holder's run is dead changes hands before its lease ends, audited with the
dead holder; a reconcile frees it (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from quayside.errors import LockHeldError
from quayside.ledger import audit, locks


def test_a_dead_holders_lock_is_taken_over_and_audited(ledger_engine: Engine) -> None:
    locks.acquire(
        ledger_engine, "web", "prod", "ann (flow run a)", flow_run_id="run-1", version="v1"
    )
    with pytest.raises(LockHeldError):
        locks.acquire(ledger_engine, "web", "prod", "bob", flow_run_id="run-2")

    # only a lock the dead run still holds changes hands
    assert (
        locks.take_over(
            ledger_engine,
            "web",
            "prod",
            dead_flow_run_id="run-9",
            holder="bob",
            flow_run_id="run-2",
            reason="run-9 Crashed",
        )  # fmt: skip
        is None
    )
    lock = locks.take_over(
        ledger_engine, "web", "prod", dead_flow_run_id="run-1", holder="bob",
        flow_run_id="run-2", version="v2", reason="flow run run-1 is Crashed",
    )  # fmt: skip
    assert lock is not None and (lock.holder, lock.flow_run_id, lock.version) == (
        "bob",
        "run-2",
        "v2",
    )
    # the new holder has it (acquire by the same run renews), the dead one can't release it
    assert locks.acquire(ledger_engine, "web", "prod", "bob", flow_run_id="run-2").holder == "bob"
    with pytest.raises(LockHeldError):
        locks.release(ledger_engine, "web", "prod", flow_run_id="run-1")

    taken = audit.list_events(ledger_engine, action="lock.taken_over")
    assert len(taken) == 1 and taken[0].actor == "bob"
    details = taken[0].details or {}
    assert details["dead_holder"]["holder"] == "ann (flow run a)"
    assert details["dead_holder"]["flow_run_id"] == "run-1"
    assert details["reason"] == "flow run run-1 is Crashed"


def test_a_reconcile_frees_only_the_dead_runs_lock(ledger_engine: Engine) -> None:
    locks.acquire(ledger_engine, "web", "prod", "ann", flow_run_id="run-1")
    assert not locks.release_dead(
        ledger_engine, "web", "prod", dead_flow_run_id="run-2", actor="reconcile", reason="x"
    )
    assert locks.current_lock(ledger_engine, "web", "prod") is not None
    assert locks.release_dead(
        ledger_engine, "web", "prod", dead_flow_run_id="run-1", actor="reconcile",
        reason="flow run run-1 is Crashed",
    )  # fmt: skip
    assert locks.current_lock(ledger_engine, "web", "prod") is None
    released = audit.list_events(ledger_engine, action="lock.released")[0]
    assert released.actor == "reconcile"
    assert (released.details or {})["reason"] == "flow run run-1 is Crashed"
