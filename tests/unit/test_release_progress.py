"""The progress artifact: updates go out from a background thread at most every interval,
and the last host's 100% goes out at once, while the run records its outcome, not when the
bar is closed after it."""

from __future__ import annotations

import threading
import time
from uuid import uuid4

import pytest

from quayside.tasks import release_progress
from quayside.tasks.release_progress import Progress


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    values: list[float] = []
    changed = threading.Condition()

    def create(value: float, **_: object) -> object:
        return uuid4()

    def update(artifact_id: object, value: float) -> None:
        with changed:
            values.append(value)
            changed.notify_all()

    monkeypatch.setattr(release_progress, "create_progress_artifact", create)
    monkeypatch.setattr(release_progress, "update_progress_artifact", update)
    return values


def test_the_last_host_sends_100_percent_before_the_bar_is_closed(sent: list[float]) -> None:
    bar = Progress(4, "k", "d", interval_s=30)  # an interval longer than the test
    for _ in range(4):
        bar.advance()
    deadline = time.monotonic() + 5
    while 100.0 not in sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent[-1] == 100.0  # sent before close, not held back by the 30 s interval
    bar.close()
    assert sent.count(100.0) == 1  # and not sent again at close


def test_updates_between_are_coalesced_to_the_newest_value(sent: list[float]) -> None:
    with Progress(10, "k", "d", interval_s=0.2) as bar:
        for _ in range(5):
            bar.advance()
        time.sleep(0.05)
    assert sent[-1] == 50.0
    assert len(sent) <= 2  # at most the first value and the newest one
