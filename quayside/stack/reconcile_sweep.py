"""The reconciling sweep ``quayside up`` starts once the platform is healthy:
``python -m quayside.stack.reconcile_sweep STARTED_AT``.

It catches the runs that died without any hook: every ledger release still ``running`` whose
Prefect run is final, gone, or still ``Running``/``Pending`` from before this ``up`` started
with no live process (after a SIGKILL of the whole platform Prefect keeps showing such a run
Running forever; the sweep sets it Crashed through the API, with a message) is reconciled with
what its hosts serve (:mod:`quayside.release.reconcile`) and its lock freed.

Then it sets Crashed every other deployment run still Running/Pending from before this ``up``
with no live process: a run stopped with the platform may have recorded its release as
interrupted itself while the API server, stopping at the same moment, missed its last state
(Prefect would have shown it Running until the heartbeat automation's window had passed).

It first makes sure the platform's heartbeat automation exists
(:mod:`quayside.runs.heartbeats`: Prefect marks a run Crashed when its heartbeats stop).

It runs in a child process with the platform's own settings (so ``up`` neither waits for it
nor imports the deploy code), bounded by ``up``; it prints one line per release reconciled
and always exits 0: a sweep that cannot finish is retried by the next ``up``, and the next
deploy takes over a dead run's lock anyway.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from quayside.errors import QuaysideError
from quayside.inventory.models import Inventory
from quayside.ledger.models import Release
from quayside.release.reconcile import reconcile_dead
from quayside.runs.heartbeats import WINDOW_S, ensure_zombie_automation
from quayside.runs.liveness import RunLife, mark_crashed, runs_life, started_runs_before

ACTOR = "reconcile:up"
CRASHED_MESSAGE = (
    "Crashed: its process was gone when `quayside up` started (the platform was stopped or "
    "killed while it ran); marked by the reconciling sweep"
)


def pid_runs(pid: str | None, flow_run_id: str) -> bool:
    """Whether process ``pid`` on this machine is alive and is ``flow_run_id``'s (its
    environment names the run; a process whose environment cannot be read counts as it)."""
    if not pid or not pid.isdigit():
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # another user's process: alive, cannot tell whose
        return True
    return f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in environ.split(b"\0")


def why_dead(
    lives: Mapping[str, RunLife],
    started_at: datetime,
    crash: Callable[[str, str], object] = mark_crashed,
    alive: Callable[[str | None, str], bool] = pid_runs,
) -> Callable[[Release], str | None]:
    """The sweep's judgement of each ``running`` release's run (``lives``: Prefect's record
    of them); a Running/Pending run from before ``started_at`` with no live process is set
    Crashed (``crash``) first."""
    crashed: dict[str, str] = {}

    def judge(release: Release) -> str | None:
        run_id = release.flow_run_id
        if not run_id:
            return None  # run outside Prefect (a test, a script): not the sweep's to judge
        if run_id in crashed:
            return crashed[run_id]
        life = lives.get(run_id)
        if life is None:
            return None
        if life.over:
            return life.describe()
        stale = life.state_at is not None and life.state_at < started_at
        if life.state_type in {"RUNNING", "PENDING"} and stale:
            if alive(life.infrastructure_pid, run_id):
                return None
            crash(run_id, CRASHED_MESSAGE)
            crashed[run_id] = (
                f"flow run {run_id} was {life.state_name} with no process when quayside up "
                "started: set Crashed"
            )
            return crashed[run_id]
        return None

    return judge


def sweep(
    engine: Engine,
    inventory: Inventory,
    *,
    started_at: datetime,
) -> list[str]:
    """Reconcile every release whose run died (see the module docstring).

    Returns:
        One line per release reconciled, naming its hosts.

    Raises:
        QuaysideError: Prefect or the ledger could not be reached.
    """
    from quayside.ledger.release_queries import running_releases

    running = running_releases(engine)
    lines: list[str] = []
    if running:
        lives = runs_life(r.flow_run_id for r in running if r.flow_run_id)
        judge = why_dead(lives, started_at)
        lines = [r.line for r in reconcile_dead(engine, inventory, judge, actor=ACTOR)]
    return lines + crash_orphans(started_runs_before(started_at))


def crash_orphans(
    lives: Mapping[str, RunLife],
    crash: Callable[[str, str], object] = mark_crashed,
    alive: Callable[[str | None, str], bool] = pid_runs,
) -> list[str]:
    """Set Crashed each of ``lives`` (runs Running/Pending since before this ``up``) whose
    process is gone; one line for each."""
    lines = []
    for run_id, life in sorted(lives.items()):
        if life.state_type not in {"RUNNING", "PENDING"} or alive(life.infrastructure_pid, run_id):
            continue
        crash(run_id, CRASHED_MESSAGE)
        lines.append(
            f"flow run {run_id} was {life.state_name} with no process when quayside up started: "
            "set Crashed"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """``STARTED_AT`` (ISO 8601, UTC): when this ``up`` started."""
    args = list(sys.argv[1:] if argv is None else argv)
    from quayside.inventory import load_inventory
    from quayside.ledger.db import make_engine
    from quayside.settings import load_settings

    try:
        started_at = datetime.fromisoformat(args[0])
        settings = load_settings()
        try:
            if ensure_zombie_automation():
                print(f"heartbeats: runs silent for {WINDOW_S}s are now marked Crashed by Prefect")
        except QuaysideError as e:
            print(f"heartbeat automation not installed: {e}")
        engine = make_engine(settings.database_url)
        try:
            inventory = load_inventory(settings.inventory_path)
            for line in sweep(engine, inventory, started_at=started_at):
                print(line, flush=True)
        finally:
            engine.dispose()
    except (QuaysideError, OSError, IndexError, ValueError) as e:
        print(f"reconcile skipped: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown (Prefect's and paramiko's threads)


if __name__ == "__main__":
    main()
