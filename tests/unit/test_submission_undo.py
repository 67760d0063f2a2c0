"""A failed submission undoes only a run it created (quayside.runs.submission.undo_on_failure):
a retried submission that found an existing scheduled run must never delete it."""

from __future__ import annotations

import pytest

from quayside.errors import LedgerError
from quayside.runs import submission
from quayside.runs.client import RunHandle


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
