"""quayside.auth.approvals.decide: the one answer path (gate, gateway pre-approval, chat):
wrong token, role too low and self-approval recorded as invalid; N approvals; expiry sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from quayside.auth import approvals as gate_core
from quayside.auth import service
from quayside.errors import InputError
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals
from quayside.ledger.models import ApprovalStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROD = ApprovalPolicy(required=2, role="MASTER", timeout_hours=1)


@pytest.fixture
def people(ledger_engine: Engine) -> dict[str, str]:
    tokens = {}
    for name, role in (
        ("dev", "DEVELOPER"),
        ("rep", "REPORTER"),
        ("m1", "MASTER"),
        ("m2", "MASTER"),
    ):
        service.create_user(ledger_engine, name)
        service.grant_role(ledger_engine, name, role, space="ops")
        tokens[name] = service.create_token(ledger_engine, name)
    return tokens


def _open(
    engine: Engine,
    policy: ApprovalPolicy = PROD,
    requester: str = "dev",
    now: datetime | None = T0,
) -> int:
    request = gate_core.open_request(
        engine,
        app="web",
        env="prod",
        space="ops",
        summary="v2",
        requested_by=requester,
        policy=policy,
        flow_run_id="run-1",
        now=now,
    )
    assert (request.space, request.approver_role) == ("ops", "MASTER")
    return request.id


def test_refused_answers_are_recorded_and_never_count(
    ledger_engine: Engine, people: dict[str, str]
) -> None:
    rid = _open(ledger_engine)
    at = T0 + timedelta(minutes=1)
    wrong = gate_core.decide(ledger_engine, rid, token_text="qs_nope", decision="approve", now=at)
    assert not wrong.accepted and wrong.user is None and "malformed" in (wrong.reason or "")
    low = gate_core.decide(ledger_engine, rid, token_text=people["rep"], decision="approve", now=at)
    assert not low.accepted and low.user == "rep" and "needs MASTER" in (low.reason or "")
    rejected_low = gate_core.decide(
        ledger_engine, rid, token_text=people["rep"], decision="reject", now=at
    )
    assert not rejected_low.accepted and rejected_low.status is ApprovalStatus.pending
    first = gate_core.decide(
        ledger_engine, rid, token_text=people["m1"], decision="approve", comment="ok", now=at
    )
    assert first.accepted and first.status is ApprovalStatus.pending
    assert first.approvers == ("m1",)
    twice = gate_core.decide(
        ledger_engine, rid, token_text=people["m1"], decision="approve", now=at
    )
    assert not twice.accepted and twice.reason == "m1 has already decided"
    second = gate_core.decide(
        ledger_engine, rid, token_text=people["m2"], decision="approve", now=at
    )
    assert second.accepted and second.status is ApprovalStatus.approved
    assert second.approvers == ("m1", "m2")
    request = approvals.get_request(ledger_engine, rid)
    assert [(d.user, d.valid) for d in request.decisions] == [
        ("anonymous", False),
        ("rep", False),
        ("rep", False),
        ("m1", True),
        ("m1", False),
        ("m2", True),
    ]
    for token in people.values():
        secret = token.rsplit("_", 1)[1]
        assert all(secret not in (d.reason or "") + (d.comment or "") for d in request.decisions)


def test_self_approval_refused_and_one_use_token(
    ledger_engine: Engine, people: dict[str, str]
) -> None:
    rid = _open(ledger_engine, ApprovalPolicy(required=1, role="MASTER"), requester="m1", now=None)
    own = gate_core.decide(ledger_engine, rid, token_text=people["m1"], decision="approve")
    assert not own.accepted and "may not approve" in (own.reason or "")
    once = service.issue_approval_token(ledger_engine, "m2")
    reject = gate_core.decide(
        ledger_engine, rid, token_text=once, decision="reject", comment="not today"
    )
    assert reject.accepted and reject.status is ApprovalStatus.rejected
    rid2 = _open(ledger_engine, ApprovalPolicy(required=1, role="MASTER"), now=None)
    reused = gate_core.decide(ledger_engine, rid2, token_text=once, decision="approve")
    assert not reused.accepted and "already used" in (reused.reason or "")
    assert reused.user is None
    assert approvals.get_request(ledger_engine, rid2).decisions[0].user.startswith("token qs_")
    with pytest.raises(InputError):
        gate_core.decide(ledger_engine, rid2, token_text=once, decision="maybe")


def test_expiry(ledger_engine: Engine, people: dict[str, str]) -> None:
    rid = _open(ledger_engine)
    assert gate_core.expire_overdue(ledger_engine, now=T0 + timedelta(minutes=59)) == []
    assert gate_core.expire_overdue(ledger_engine, now=T0 + timedelta(hours=1)) == [rid]
    assert approvals.get_request(ledger_engine, rid).status is ApprovalStatus.expired
    late = gate_core.decide(
        ledger_engine, rid, token_text=people["m1"], decision="approve", now=T0 + timedelta(hours=2)
    )
    assert not late.accepted and late.status is ApprovalStatus.expired
