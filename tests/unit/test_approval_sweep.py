"""The sweep behind every approval answer: a run still paused although its latest request was
decided is woken (an answer's wake lost to a Prefect restart must not leave an approved release
waiting until it expires); a run waiting on a newer request, a release that moved on, and an
undecided request are left alone. And an answer whose wake Prefect refuses says so (SQLite
ledger; Prefect's answers given by the test)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.ledger import approvals
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ApprovalStatus, ReleaseKind, ReleaseStatus, utcnow
from quayside.ledger.releases import mark_running, start_release
from quayside.runs import approval_answers
from quayside.runs.approval_sweep import close_for_ended_runs, wake_decided
from quayside.runs.client import RunStatus
from quayside.runs.liveness import RunLife
from quayside.runs.prefect_http import PrefectUnavailable


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


def _request(
    engine: Engine, run_id: str, *, release: bool = True, decide: str | None = "approve"
) -> int:
    release_id = None
    if release:
        release_id = start_release(
            engine, "shop", "prod", ReleaseKind.deploy, requested_by="dev", version="v1",
            flow_run_id=run_id, status=ReleaseStatus.awaiting_approval,
        ).id  # fmt: skip
    request = approvals.create_request(
        engine, "shop", "prod", summary="v1", requested_by="dev", flow_run_id=run_id,
        release_id=release_id, expires_in=timedelta(hours=4),
    )  # fmt: skip
    if decide is not None:
        approvals.record_decision(engine, request.id, "lead", decide)
    return request.id


def test_runs_whose_latest_request_is_decided_while_they_wait(engine: Engine) -> None:
    approved = _request(engine, "run-approved")
    rejected = _request(engine, "run-rejected", decide="reject")
    _request(engine, "run-pending", decide=None)
    no_release = _request(engine, "run-no-release", release=False)
    # the first gate was approved, the run now waits on its second gate's request
    _request(engine, "run-second-gate")
    _request(engine, "run-second-gate", release=False, decide=None)
    # approved, and its release went on
    moved_on = _request(engine, "run-moved-on", release=False)
    release = start_release(
        engine, "shop", "test", ReleaseKind.deploy, requested_by="dev", version="v1",
        flow_run_id="run-moved-on", status=ReleaseStatus.awaiting_approval,
    )  # fmt: skip
    mark_running(engine, release.id)

    assert approvals.decided_while_waiting(engine) == {
        "run-approved": approved,
        "run-rejected": rejected,
        "run-no-release": no_release,
        "run-moved-on": moved_on,  # no release of its own: looked at for an hour
    }
    later = utcnow() + timedelta(hours=2)
    assert approvals.decided_while_waiting(engine, now=later) == {
        "run-approved": approved,
        "run-rejected": rejected,
    }
    # a week on, a run suspended that long has had its wait time out: nothing is looked at
    assert approvals.decided_while_waiting(engine, now=utcnow() + timedelta(days=8)) == {}


def _life(run_id: str, state_type: str, name: str = "", key: str | None = None) -> RunLife:
    return RunLife(run_id, True, state_type, name or state_type.title(), None, None, key)


def test_only_runs_suspended_on_their_decided_request_are_woken(engine: Engine) -> None:
    suspended = _request(engine, "run-suspended")
    running = _request(engine, "run-running")
    _request(engine, "run-gone")
    refused = _request(engine, "run-refused")
    in_process = _request(engine, "run-in-process")
    other_wait = _request(engine, "run-other-wait")
    failing = _request(engine, "run-failing")
    lives = {
        "run-suspended": _life("run-suspended", "PAUSED", "Suspended", f"approval-{suspended}-2"),
        "run-running": _life("run-running", "RUNNING", key=f"approval-{running}-1"),
        "run-gone": RunLife("run-gone", False, "MISSING", "missing"),
        "run-refused": _life("run-refused", "PAUSED", "Suspended", f"approval-{refused}-1"),
        # paused in its own process: its gate reads the ledger itself every few seconds
        "run-in-process": _life("run-in-process", "PAUSED", "Paused", f"approval-{in_process}-1"),
        # suspended on a wait that is not this request's (its own code's, another request's)
        "run-other-wait": _life(
            "run-other-wait", "PAUSED", "Suspended", f"approval-{other_wait}0-1"
        ),
        "run-failing": _life("run-failing", "PAUSED", "Suspended", f"approval-{failing}-1"),
    }
    resumed: list[str] = []

    def resume(run_id: str) -> str:
        resumed.append(run_id)
        if run_id == "run-failing":
            raise PrefectUnavailable("the Prefect API at http://127.0.0.1:9/api does not answer")
        return "ACCEPT" if run_id == "run-suspended" else "REJECT"

    results = wake_decided(engine, lives=lambda ids: lives, resume=resume)
    assert sorted(resumed) == ["run-failing", "run-refused", "run-suspended"]
    by_run = {r.run_id: r for r in results}
    assert by_run["run-suspended"].request_id == suspended
    assert by_run["run-suspended"].line.endswith("woken")
    assert by_run["run-refused"].line.endswith("not woken (Prefect: REJECT)")
    # one run's failure is reported, and the others still had their turn
    assert "does not answer" in by_run["run-failing"].line


def test_nothing_decided_asks_prefect_nothing(engine: Engine) -> None:
    _request(engine, "run-pending", decide=None)

    def never(ids: list[str]) -> dict[str, RunLife]:
        raise AssertionError("Prefect was asked")

    assert wake_decided(engine, lives=never, resume=lambda run_id: "ACCEPT") == []


def _paused(run_id: str) -> RunStatus:
    return RunStatus(run_id, "r", "PAUSED", "Suspended", None, {}, ())


def test_an_answer_whose_wake_prefect_refuses_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def refuse(run_id: str, run_input: object = None) -> str:
        calls.append(run_id)
        return "REJECT"

    monkeypatch.setattr(approval_answers, "resume_run", refuse)
    monkeypatch.setattr(approval_answers, "read_run", _paused)
    monkeypatch.setattr(approval_answers, "WAKE_POLL_S", 0.01)
    wake, why = approval_answers.wake_gate(_paused("r1"), patience_s=0.05)
    assert wake == "not woken"
    assert why == "Prefect answered the resume with REJECT"
    assert len(calls) >= 2  # tried again within its patience


def test_an_api_that_does_not_answer_is_not_a_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(run_id: str, run_input: object = None) -> str:
        raise PrefectUnavailable("the Prefect API at http://127.0.0.1:9/api does not answer")

    monkeypatch.setattr(approval_answers, "resume_run", down)
    monkeypatch.setattr(approval_answers, "read_run", _paused)
    monkeypatch.setattr(approval_answers, "WAKE_POLL_S", 0.01)
    wake, why = approval_answers.wake_gate(_paused("r1"), patience_s=0.03)
    assert wake == "not woken"
    assert why is not None and "does not answer" in why


def test_a_woken_run_is_woken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(approval_answers, "resume_run", lambda run_id, run_input=None: "ACCEPT")
    assert approval_answers.wake_gate(_paused("r1"), patience_s=0.05) == ("woken", None)


def test_a_run_that_found_the_answer_itself_was_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paused in its own process, the run read the ledger and went on before the resume
    reached Prefect: the refused resume is no lost wake."""
    monkeypatch.setattr(approval_answers, "resume_run", lambda run_id, run_input=None: "ABORT")
    monkeypatch.setattr(
        approval_answers,
        "read_run",
        lambda run_id: RunStatus(run_id, "r", "RUNNING", "Running", None, {}, ()),
    )
    monkeypatch.setattr(approval_answers, "WAKE_POLL_S", 0.01)
    assert approval_answers.wake_gate(_paused("r1"), patience_s=0.05) == ("not waiting", None)


def test_pending_requests_of_ended_runs_are_closed_and_their_releases_cancelled(
    engine: Engine,
) -> None:
    """A run cancelled (or crashed) while it waited never reads its request again: the sweep
    voids it and ends the release awaiting it as cancelled, naming the run's state - and ends
    the release of a run that ended after its answer, before it went on. Runs still
    scheduled, pending, cancelling or waiting, and one Prefect does not know, are left alone."""
    from quayside.ledger.release_queries import get_release

    cancelled = _request(engine, "run-cancelled", decide=None)
    decided = _request(engine, "run-decided-then-crashed")
    alive = {
        name: _request(engine, name, decide=None)
        for name in ("run-waiting", "run-scheduled", "run-pending", "run-cancelling")
    }
    unknown = _request(engine, "run-unknown", decide=None)
    lives = {
        "run-cancelled": _life("run-cancelled", "CANCELLED"),
        "run-decided-then-crashed": _life("run-decided-then-crashed", "CRASHED"),
        "run-waiting": _life("run-waiting", "PAUSED", "Suspended", "approval-1-1"),
        "run-scheduled": _life("run-scheduled", "SCHEDULED", "Resuming"),
        "run-pending": _life("run-pending", "PENDING"),
        "run-cancelling": _life("run-cancelling", "CANCELLING"),
        "run-unknown": RunLife("run-unknown", False, "MISSING", "missing"),
    }
    lines = close_for_ended_runs(engine, lives=lambda ids: lives)
    decided_release = approvals.get_request(engine, decided).release_id
    assert sorted(lines) == sorted(
        [
            f"approval request {cancelled} voided: its run ended without an answer "
            "(flow run run-cancelled is Cancelled)",
            f"release {decided_release} cancelled: its run ended "
            "(flow run run-decided-then-crashed is Crashed)",
        ]
    )
    request = approvals.get_request(engine, cancelled)
    assert request.status is ApprovalStatus.voided
    release = get_release(engine, request.release_id or 0)
    assert release.status is ReleaseStatus.cancelled
    assert "ended without an answer" in release.details["error"]
    assert approvals.get_request(engine, decided).status is ApprovalStatus.approved
    for request_id in [*alive.values(), unknown]:
        still = approvals.get_request(engine, request_id)
        assert still.status is ApprovalStatus.pending
        assert get_release(engine, still.release_id or 0).status is (
            ReleaseStatus.awaiting_approval
        )
    # once closed, nothing is left for the next sweep
    assert close_for_ended_runs(engine, lives=lambda ids: lives) == []


def test_a_request_past_its_time_is_expired_not_voided(engine: Engine) -> None:
    """Prefect failed the run because its wait timed out before the expiry step saw the
    request: it ends expired, as the expiry sweep would have recorded it."""
    from datetime import timedelta as td

    from quayside.ledger.release_queries import get_release

    release = start_release(
        engine, "shop", "prod", ReleaseKind.deploy, requested_by="dev", version="v1",
        flow_run_id="run-timed-out", status=ReleaseStatus.awaiting_approval,
    )  # fmt: skip
    request = approvals.create_request(
        engine, "shop", "prod", summary="v1", requested_by="dev", flow_run_id="run-timed-out",
        release_id=release.id, expires_in=td(seconds=1), now=utcnow() - td(minutes=5),
    )  # fmt: skip
    lives = {"run-timed-out": _life("run-timed-out", "FAILED")}
    lines = close_for_ended_runs(engine, lives=lambda ids: lives)
    assert [line.split(":")[0] for line in lines] == [f"approval request {request.id} expired"]
    assert approvals.get_request(engine, request.id).status is ApprovalStatus.expired
    assert get_release(engine, release.id).status is ReleaseStatus.expired


def test_one_request_that_cannot_be_closed_does_not_stop_the_others(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quayside.errors import LedgerError
    from quayside.runs import approval_sweep

    first = _request(engine, "run-a", decide=None)
    second = _request(engine, "run-b", decide=None)
    real = approval_sweep.close_for_ended_run

    def flaky(db: Engine, request_id: int, why: str, *, actor: str) -> str | None:
        if request_id == first:
            raise LedgerError("the ledger refused the change")
        return real(db, request_id, why, actor=actor)

    monkeypatch.setattr(approval_sweep, "close_for_ended_run", flaky)
    lives = {r: _life(r, "CANCELLED") for r in ("run-a", "run-b")}
    lines = close_for_ended_runs(engine, lives=lambda ids: lives)
    assert "run run-a: not closed (the ledger refused the change)" in lines
    assert approvals.get_request(engine, second).status is ApprovalStatus.voided
