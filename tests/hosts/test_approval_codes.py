"""Approval codes (quayside.auth.approval_codes): issued only to someone who may answer,
stored hashed, single-use, bound to their request and user, expiring with the request; every
refused code is recorded with its reason and changes nothing else."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from quayside.auth import approval_codes, codes, service
from quayside.auth import approvals as gate_core
from quayside.auth.roles import PermissionDenied
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals
from quayside.ledger.models import ApprovalStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = ApprovalPolicy(required=2, role="MASTER", timeout_hours=1)


@pytest.fixture
def people(ledger_engine: Engine) -> None:
    for name, role in (
        ("dev", "DEVELOPER"),
        ("rep", "REPORTER"),
        ("m1", "MASTER"),
        ("m2", "MASTER"),
    ):
        service.create_user(ledger_engine, name)
        service.grant_role(ledger_engine, name, role, space="ops")


def _open(engine: Engine, run: str = "run-1", policy: ApprovalPolicy = POLICY) -> int:
    return gate_core.open_request(
        engine, app="web", env="prod", space="ops", summary="v2", requested_by="dev",
        policy=policy, flow_run_id=run, now=T0,
    ).id  # fmt: skip


def test_code_format() -> None:
    code = codes.new_code()
    assert len(code) == 10 and set(code) <= set(codes.ALPHABET)
    assert not set("01IO") & set(codes.ALPHABET)
    shown = codes.display(code)
    assert re.fullmatch(r"[2-9A-Z]{5}-[2-9A-Z]{5}", shown)
    assert codes.normalize(f"  {shown.lower()} ") == code
    assert codes.normalize(shown.replace("-", " ")) == code
    for bad in ("", "ABCDE-FGH2", "ABCDE-FGH2O", "qs_" + "0" * 12, "A" * 100):
        assert codes.normalize(bad) is None
    stored = codes.hash_code(code)
    assert code not in stored and codes.matches(code, stored)
    assert stored != codes.hash_code(code)  # a salt per code
    assert not codes.matches(codes.new_code(), stored)


def test_only_an_allowed_approver_gets_a_code(ledger_engine: Engine, people: None) -> None:
    rid = _open(ledger_engine)
    at = T0 + timedelta(minutes=1)
    with pytest.raises(PermissionDenied, match="rep needs MASTER or higher"):
        approval_codes.issue_code(ledger_engine, rid, user="rep", now=at)
    with pytest.raises(PermissionDenied, match="dev requested this release"):
        approval_codes.issue_code(ledger_engine, rid, user="dev", now=at)
    issued = approval_codes.issue_code(ledger_engine, rid, user="m1", now=at)
    assert issued.expires_at == T0 + timedelta(hours=1)
    assert issued.code not in repr(issued)
    with ledger_engine.connect() as conn:
        stored = " ".join(
            str(v) for row in conn.execute(text("SELECT * FROM approval_codes")) for v in row
        )
        events = " ".join(
            str(v) for row in conn.execute(text("SELECT * FROM audit_events")) for v in row
        )
    canonical = codes.normalize(issued.code)
    assert canonical is not None
    assert canonical not in stored and issued.code not in stored and canonical not in events
    assert approvals.get_request(ledger_engine, rid).decisions == []  # refusals to issue: no answer
    ok = approval_codes.decide_with_code(
        ledger_engine, rid, code_text=issued.code, decision="approve", comment="ok", now=at
    )
    assert ok.accepted and ok.user == "m1" and ok.status is ApprovalStatus.pending
    with pytest.raises(PermissionDenied, match="m1 has already decided"):
        approval_codes.issue_code(ledger_engine, rid, user="m1", now=at)


def test_refused_codes_are_recorded_and_change_nothing(ledger_engine: Engine, people: None) -> None:
    rid = _open(ledger_engine)
    other = _open(ledger_engine, run="run-2")
    at = T0 + timedelta(minutes=1)
    mine = approval_codes.issue_code(ledger_engine, rid, user="m1", now=at)
    foreign = approval_codes.issue_code(ledger_engine, other, user="m2", now=at)
    replaced = approval_codes.issue_code(ledger_engine, rid, user="m2", now=at)
    current = approval_codes.issue_code(ledger_engine, rid, user="m2", now=at)

    def answer(code: str, approver: str = "", minutes: int = 2) -> gate_core.Resolution:
        return approval_codes.decide_with_code(
            ledger_engine, rid, code_text=code, decision="approve", approver=approver,
            now=T0 + timedelta(minutes=minutes),
        )  # fmt: skip

    wrong = codes.display(codes.new_code())
    refusals = [
        (answer(""), "anonymous", "no approval code"),
        (answer("hello"), "anonymous", "not an approval code"),
        (answer(wrong), "anonymous", "wrong approval code"),
        (answer(foreign.code), "m2", f"issued for approval request {other}, not {rid}"),
        (answer(replaced.code), "m2", "replaced by a newer one"),
        (answer(mine.code, approver="m2"), "m1", "is m1's, not m2's"),
    ]
    for resolution, user, reason in refusals:
        assert not resolution.accepted and resolution.status is ApprovalStatus.pending
        assert resolution.user == user and reason in (resolution.reason or ""), resolution
    first = answer(mine.code, approver="m1")
    assert first.accepted and first.user == "m1"
    reused = answer(mine.code)
    assert not reused.accepted and "already used" in (reused.reason or "")
    late = answer(current.code, minutes=61)
    assert not late.accepted
    request = approvals.get_request(ledger_engine, rid)
    assert request.status is ApprovalStatus.expired
    assert [d.valid for d in request.decisions] == [False] * 6 + [True, False, False]
    assert approvals.get_request(ledger_engine, other).decisions == []
    for issued in (mine, foreign, replaced, current):
        assert all(issued.code not in (d.reason or "") for d in request.decisions)


def test_expired_code_is_refused_before_the_request_is_swept(
    ledger_engine: Engine, people: None
) -> None:
    rid = _open(ledger_engine, policy=ApprovalPolicy(required=1, role="MASTER", timeout_hours=1))
    issued = approval_codes.issue_code(ledger_engine, rid, user="m1", now=T0)
    late = approval_codes.decide_with_code(
        ledger_engine, rid, code_text=issued.code, decision="approve", now=T0 + timedelta(hours=1)
    )
    assert not late.accepted and "expired" in (late.reason or "")
    assert late.status is ApprovalStatus.expired
    with pytest.raises(PermissionDenied, match="already expired"):
        approval_codes.issue_code(ledger_engine, rid, user="m2", now=T0 + timedelta(hours=2))


def test_a_code_counts_once_even_when_answers_race(ledger_engine: Engine, people: None) -> None:
    rid = _open(ledger_engine, policy=ApprovalPolicy(required=1, role="MASTER"))
    at = T0 + timedelta(minutes=1)
    issued = approval_codes.issue_code(ledger_engine, rid, user="m1", now=at)
    canonical = codes.normalize(issued.code)
    assert canonical is not None
    row = approval_codes.approval_codes.codes_of_request(ledger_engine, rid)[0]
    assert approval_codes.approval_codes.consume_code(ledger_engine, row.id, now=at)
    assert not approval_codes.approval_codes.consume_code(ledger_engine, row.id, now=at)
    after = approval_codes.decide_with_code(
        ledger_engine, rid, code_text=issued.code, decision="reject", now=at
    )
    assert not after.accepted and "already used" in (after.reason or "")
    assert approvals.get_request(ledger_engine, rid).status is ApprovalStatus.pending
