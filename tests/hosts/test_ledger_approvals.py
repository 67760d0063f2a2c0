"""Approval requests: approvals counted per distinct person, rejection, self-approval and
double votes recorded as invalid, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from quayside.errors import InputError, LedgerError, NotFoundError
from quayside.ledger import approvals, audit, releases
from quayside.ledger.models import ApprovalStatus, Decision

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_two_approvals_needed(ledger_engine: Engine) -> None:
    release = releases.start_release(
        ledger_engine, "web", "prod", "deploy", requested_by="ann", status="awaiting_approval"
    )
    request = approvals.create_request(
        ledger_engine,
        "web",
        "prod",
        summary="| host | change |\n|---|---|\n| web-1 | v1 → v2 |",
        requested_by="ann",
        required_approvals=2,
        flow_run_id="run-7",
        release_id=release.id,
        expires_in=timedelta(hours=1),
        now=T0,
    )
    assert request.status is ApprovalStatus.pending
    assert request.expires_at == T0 + timedelta(hours=1)

    own = approvals.record_decision(ledger_engine, request.id, "ann", "approve", now=T0)
    assert not own.valid and own.reason == "the requester cannot decide their own request"
    first = approvals.record_decision(
        ledger_engine, request.id, "bob", Decision.approve, comment="lgtm", now=T0
    )
    assert first.valid and first.request.status is ApprovalStatus.pending
    again = approvals.record_decision(ledger_engine, request.id, "bob", "approve", now=T0)
    assert not again.valid and again.reason == "bob has already decided"
    second = approvals.record_decision(
        ledger_engine, request.id, "cat", "approve", now=T0 + timedelta(minutes=5)
    )
    assert second.valid

    final = approvals.get_request(ledger_engine, request.id)
    assert final.status is ApprovalStatus.approved
    assert final.decided_at == T0 + timedelta(minutes=5)
    assert [(d.user, d.valid) for d in final.decisions] == [
        ("ann", False),
        ("bob", True),
        ("bob", False),
        ("cat", True),
    ]
    late = approvals.record_decision(ledger_engine, request.id, "dan", "reject", now=T0)
    assert not late.valid and late.reason == "request is already approved"
    assert approvals.get_request(ledger_engine, request.id).status is ApprovalStatus.approved

    events = audit.list_events(ledger_engine, subject_type="approval_request")
    assert [e.action for e in reversed(events)] == ["approval.requested"] + ["approval.decided"] * 5
    assert events[1].details is not None and events[1].details["status"] == "approved"


def test_one_rejection_rejects(ledger_engine: Engine) -> None:
    request = approvals.create_request(
        ledger_engine, "web", "prod", summary="s", requested_by="ann", required_approvals=2
    )
    approvals.record_decision(ledger_engine, request.id, "bob", "approve")
    decision = approvals.record_decision(
        ledger_engine, request.id, "cat", "reject", comment="not on a Friday"
    )
    assert decision.valid
    assert decision.request.status is ApprovalStatus.rejected


def test_self_approval_when_allowed(ledger_engine: Engine) -> None:
    request = approvals.create_request(ledger_engine, "web", "dev", summary="s", requested_by="ann")
    decision = approvals.record_decision(
        ledger_engine, request.id, "ann", "approve", allow_self_approval=True
    )
    assert decision.valid and decision.request.status is ApprovalStatus.approved


def test_expiry(ledger_engine: Engine) -> None:
    request = approvals.create_request(
        ledger_engine,
        "web",
        "prod",
        summary="s",
        requested_by="ann",
        expires_in=timedelta(minutes=10),
        now=T0,
    )
    still = approvals.resolve(ledger_engine, request.id, now=T0 + timedelta(minutes=9))
    assert still.status is ApprovalStatus.pending
    late_vote = approvals.record_decision(
        ledger_engine, request.id, "bob", "approve", now=T0 + timedelta(minutes=11)
    )
    assert not late_vote.valid and late_vote.reason == "request expired"
    assert late_vote.request.status is ApprovalStatus.expired
    again = approvals.resolve(ledger_engine, request.id, now=T0 + timedelta(minutes=12))
    assert again.status is ApprovalStatus.expired
    actions = [e.action for e in audit.list_events(ledger_engine, subject_id=request.id)]
    assert actions == ["approval.decided", "approval.requested"]  # resolve changed nothing


def test_resolve_expires_a_forgotten_request(ledger_engine: Engine) -> None:
    request = approvals.create_request(
        ledger_engine, "web", "prod", summary="s", requested_by="ann",
        expires_in=timedelta(seconds=1), now=T0,
    )  # fmt: skip
    resolved = approvals.resolve(ledger_engine, request.id, now=T0 + timedelta(hours=1))
    assert resolved.status is ApprovalStatus.expired
    assert resolved.decided_at == T0 + timedelta(hours=1)
    assert audit.list_events(ledger_engine, subject_id=request.id)[0].action == (
        "approval.resolved"
    )


def test_bad_inputs(ledger_engine: Engine) -> None:
    with pytest.raises(InputError, match="at least 1"):
        approvals.create_request(
            ledger_engine, "web", "prod", summary="s", requested_by="a", required_approvals=0
        )
    with pytest.raises(LedgerError, match="refused"):  # unknown release: foreign key
        approvals.create_request(
            ledger_engine, "web", "prod", summary="s", requested_by="a", release_id=424242
        )
    request = approvals.create_request(ledger_engine, "web", "prod", summary="s", requested_by="a")
    with pytest.raises(InputError, match="approve or reject"):
        approvals.record_decision(ledger_engine, request.id, "bob", "maybe")
    with pytest.raises(NotFoundError):
        approvals.record_decision(ledger_engine, 424242, "bob", "approve")
    with pytest.raises(NotFoundError):
        approvals.get_request(ledger_engine, 424242)
    assert len(audit.list_events(ledger_engine)) == 1
