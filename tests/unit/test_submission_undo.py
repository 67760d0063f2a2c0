"""A failed submission undoes only a run it created (quayside.runs.submission.undo_on_failure):
a retried submission that found an existing scheduled run must never delete it. A run held for
its submission is deleted while no worker can have taken it, never after."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from quayside.errors import LedgerError
from quayside.runs import submission
from quayside.runs.client import RELEASE_WITHIN_S, RunHandle


def handle(*, created: bool) -> RunHandle:
    return RunHandle("run-1", "a-run", "git-deploy/git-deploy", "ui", None, created=created)


@pytest.mark.parametrize(
    ("created", "scheduled", "deleted"),
    [(True, True, ["run-1"]), (False, True, []), (True, False, [])],
)
def test_only_a_scheduled_run_this_submission_created_is_deleted(
    monkeypatch: pytest.MonkeyPatch, created: bool, scheduled: bool, deleted: list[str]
) -> None:
    gone: list[str] = []
    monkeypatch.setattr(submission, "delete_run", gone.append)
    with (
        pytest.raises(LedgerError),
        submission.undo_on_failure(handle(created=created), scheduled=scheduled),
    ):
        raise LedgerError("the ledger refused the approval request")
    assert gone == deleted


@pytest.mark.parametrize(
    ("age_s", "created", "deleted"),
    [(0.0, True, ["run-1"]), (RELEASE_WITHIN_S + 1, True, []), (0.0, False, [])],
)
def test_a_held_run_is_deleted_only_while_no_worker_can_have_taken_it(
    monkeypatch: pytest.MonkeyPatch, age_s: float, created: bool, deleted: list[str]
) -> None:
    held = RunHandle(
        "run-1",
        "a-run",
        "git-deploy/git-deploy",
        "ui",
        None,
        created=created,
        release_at=datetime.now(UTC),
        held_since=time.monotonic() - age_s,
    )
    gone: list[str] = []
    monkeypatch.setattr(submission, "delete_run", gone.append)
    with pytest.raises(LedgerError), submission.undo_on_failure(held, scheduled=False):
        raise LedgerError("the ledger is busy")
    assert gone == deleted
