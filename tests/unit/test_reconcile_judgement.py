"""What the reconciling sweep judges dead, how a split fleet reads, and how a run's process is
recognised (a real child process carrying a run id)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from quayside.release.fleet_summary import UNKNOWN, fleet_counts, fleet_line
from quayside.runs.liveness import RunLife
from quayside.stack.reconcile_sweep import CRASHED_MESSAGE, crash_orphans, pid_runs, why_dead

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def release(run_id: str | None) -> Any:
    return SimpleNamespace(flow_run_id=run_id)


def test_fleet_counts_and_line() -> None:
    counts = fleet_counts(["v2", "v1", "v2", UNKNOWN, "v2", "v1"])
    assert counts == [["v2", 3], ["v1", 2], [UNKNOWN, 1]]
    summary = {"hosts": 6, "fleet": counts}
    assert fleet_line(summary) == "3 of 6 hosts on v2, 2 on v1, 1 on unknown (unreadable)"
    assert fleet_line({"hosts": 1, "fleet": [["v1", 1]]}) == "1 of 1 host on v1"
    assert fleet_line(None) is None and fleet_line({"result": "not run"}) is None


def test_the_sweep_judges_final_missing_and_stale_runs_dead_and_spares_the_rest() -> None:
    crashed: list[tuple[str, str]] = []
    lives = {
        "done": RunLife("done", True, "COMPLETED", "Completed", T0),
        "gone": RunLife("gone", False, "MISSING", "missing"),
        "stale": RunLife("stale", True, "RUNNING", "Running", T0 - timedelta(minutes=5), "999"),
        "stale-alive": RunLife("stale-alive", True, "RUNNING", "Running", T0 - timedelta(1), "1"),
        "fresh": RunLife("fresh", True, "RUNNING", "Running", T0 + timedelta(seconds=5)),
        "paused": RunLife("paused", True, "PAUSED", "Suspended", T0 - timedelta(days=1)),
    }
    judge = why_dead(
        lives,
        T0,
        crash=lambda run_id, message: crashed.append((run_id, message)),
        alive=lambda pid, run_id: run_id == "stale-alive",
    )
    assert judge(release("done")) == "flow run done is Completed"
    assert judge(release("gone")) == "flow run gone no longer exists in Prefect"
    reason = judge(release("stale"))
    assert reason is not None and "set Crashed" in reason
    assert judge(release("stale")) == reason  # a second release of the run: crashed once
    assert crashed == [("stale", CRASHED_MESSAGE)]
    for spared in ("stale-alive", "fresh", "paused", "unknown-to-prefect-listing", None):
        assert judge(release(spared)) is None, spared


def test_runs_left_running_without_a_process_are_crashed_whatever_the_ledger_says() -> None:
    crashed: list[tuple[str, str]] = []
    before = T0 - timedelta(minutes=5)
    lives = {
        "orphan": RunLife("orphan", True, "RUNNING", "Running", before, "999"),
        "pending": RunLife("pending", True, "PENDING", "Pending", before),
        "alive": RunLife("alive", True, "RUNNING", "Running", before, "1"),
        "done": RunLife("done", True, "COMPLETED", "Completed", before),
    }
    lines = crash_orphans(
        lives,
        crash=lambda run_id, message: crashed.append((run_id, message)),
        alive=lambda pid, run_id: run_id == "alive",
    )
    assert crashed == [("orphan", CRASHED_MESSAGE), ("pending", CRASHED_MESSAGE)]
    assert lines == [
        "flow run orphan was Running with no process when quayside up started: set Crashed",
        "flow run pending was Pending with no process when quayside up started: set Crashed",
    ]


def test_a_runs_process_is_recognised_by_the_run_id_in_its_environment() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "PREFECT__FLOW_RUN_ID": "run-a"},
    )
    try:
        # between fork and exec /proc shows the parent's environment: wait for the exec
        deadline = time.monotonic() + 10
        while not pid_runs(str(child.pid), "run-a") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pid_runs(str(child.pid), "run-a")
        assert not pid_runs(str(child.pid), "run-b")  # a reused pid is not the run's
    finally:
        child.kill()
        child.wait()
    assert not pid_runs(str(child.pid), "run-a")  # gone
    assert not pid_runs(None, "run-a") and not pid_runs("host:12", "run-a")
