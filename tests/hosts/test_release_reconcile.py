"""A release whose process was SIGKILLed mid-switch is reconciled with what the real sshd hosts
serve: per-host rows (switched / still on the old release / unreadable), the release
``interrupted`` with the fleet's split, one audit event, the dead run's lock freed; a second
reconcile changes nothing. Also the crash hook's entry point (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from sqlalchemy import Engine

from quayside.inventory import load_inventory
from quayside.ledger import audit, locks
from quayside.ledger.models import HostStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release
from quayside.ledger.releases import finish_release, mark_running, start_release
from quayside.release.fleet_summary import fleet_line
from quayside.release.reconcile import reconcile_dead
from testbed.release_fixtures import current_id, host_entries
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.ssh]

R1 = "20260101T000000Z-aaaaaaaaaaaa"
R2 = "20260102T000000Z-bbbbbbbbbbbb"
RUN = "0b9c7a52-0000-4000-8000-000000000001"

# a "controller": takes the lock, records its release running, switches hosts one by one
# (the same rename of a temporary link a deploy does), says so, and waits to be killed
CONTROLLER = r"""
import os, sys, time
from quayside.ledger.db import make_engine
from quayside.ledger import locks
from quayside.ledger.releases import mark_running
url, run, release_id, rid, *roots = sys.argv[1:]
engine = make_engine(url)
locks.acquire(engine, "shop", "test", "ann (flow run doomed)", flow_run_id=run, version="v2")
mark_running(engine, int(release_id))
for root in roots:
    os.symlink(f"releases/{rid}", f"{root}/.current.tmp")
    os.replace(f"{root}/.current.tmp", f"{root}/current")
print("switched", flush=True)
time.sleep(600)
"""


def make_host_release(root: Path, rid: str) -> None:
    (root / "releases" / rid).mkdir(parents=True, exist_ok=True)
    (root / "releases" / rid / "index.html").write_text(rid)


def point(root: Path, rid: str) -> None:
    tmp = root / ".current.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(f"releases/{rid}")
    os.replace(tmp, root / "current")


def inventory_file(tmp_path: Path, fleet: SshdFleet) -> Path:
    path = tmp_path / "quayside.yaml"
    app = {
        "repo": str(tmp_path),
        "deploy_root": str(fleet.base_dir / "{host}" / "root"),
        "environments": {"test": {"hosts": [h.name for h in fleet]}},
    }
    path.write_text(yaml.safe_dump({"hosts": host_entries(fleet), "apps": {"shop": app}}))
    return path


def fleet_on_v1(engine: Engine, fleet: SshdFleet) -> int:
    """v1 served everywhere and recorded; v2 recorded (pending), its directory on every host."""
    v1 = start_release(
        engine, "shop", "test", ReleaseKind.deploy, requested_by="ann", version="v1",
        details={"release_id": R1},
    )  # fmt: skip
    mark_running(engine, v1.id)
    finish_release(engine, v1.id, ReleaseStatus.succeeded)
    for h in fleet:
        make_host_release(h.root, R1)
        make_host_release(h.root, R2)
        point(h.root, R1)
    v2 = start_release(
        engine, "shop", "test", ReleaseKind.deploy, requested_by="ann", version="v2",
        flow_run_id=RUN, details={"release_id": R2},
    )  # fmt: skip
    return v2.id


def test_a_release_killed_mid_switch_is_reconciled_with_the_hosts(
    ledger_url: str, ledger_engine: Engine, clean_ssh_fleet: SshdFleet, tmp_path: Path
) -> None:
    fleet = clean_ssh_fleet
    inventory = load_inventory(inventory_file(tmp_path, fleet))
    release_id = fleet_on_v1(ledger_engine, fleet)
    switching = [str(h.root) for h in fleet][:2]  # web-1 and web-2 switch, web-3 never does
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, ledger_url, RUN, str(release_id), R2, *switching],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert controller.stdout is not None
    assert controller.stdout.readline().strip() == "switched"
    controller.send_signal(signal.SIGKILL)  # the run dies mid-release
    assert controller.wait(timeout=30) == -signal.SIGKILL
    assert get_release(ledger_engine, release_id).status == ReleaseStatus.running
    assert locks.current_lock(ledger_engine, "shop", "test") is not None

    why = f"flow run {RUN} is Crashed: process killed by SIGKILL"
    done = reconcile_dead(
        ledger_engine,
        inventory,
        lambda r: why if r.flow_run_id == RUN else None,
        actor="reconcile:test",
    )

    assert [current_id(h) for h in fleet] == [R2, R2, R1]  # untouched by the reconcile
    assert len(done) == 1 and done[0].switched == ("web-1", "web-2")
    assert done[0].lock_freed
    assert "2 of 3 hosts on v2, 1 on v1" in done[0].line and "web-1, web-2" in done[0].line
    row = get_release(ledger_engine, release_id)
    assert row.status == ReleaseStatus.interrupted and row.finished_at is not None
    hosts = {h.host: (h.status, h.serves) for h in row.hosts}
    assert hosts == {
        "web-1": (HostStatus.switched, R2),
        "web-2": (HostStatus.switched, R2),
        "web-3": (HostStatus.skipped, R1),
    }
    assert "still serves v1" in next(h.message for h in row.hosts if h.host == "web-3")
    assert fleet_line(row.summary) == "2 of 3 hosts on v2, 1 on v1"
    events = audit.list_events(ledger_engine, subject_type="release", subject_id=release_id)
    assert [e.action for e in events].count("release.interrupted") == 1
    assert locks.current_lock(ledger_engine, "shop", "test") is None

    # once is enough: a second reconcile (the sweep after the hook) writes nothing
    again = reconcile_dead(ledger_engine, inventory, lambda r: why, actor="reconcile:test")
    assert again == []
    assert len(
        audit.list_events(ledger_engine, subject_type="release", subject_id=release_id)
    ) == len(events)


def test_an_unreachable_host_is_recorded_as_unreadable(
    ledger_engine: Engine, clean_ssh_fleet: SshdFleet, tmp_path: Path
) -> None:
    fleet = clean_ssh_fleet
    inventory = load_inventory(inventory_file(tmp_path, fleet))
    release_id = fleet_on_v1(ledger_engine, fleet)
    mark_running(ledger_engine, release_id)
    point(fleet[0].root, R2)
    fleet[2].stop()
    try:
        done = reconcile_dead(ledger_engine, inventory, lambda r: "dead", actor="reconcile:test")
    finally:
        fleet[2].start()
    assert done[0].unreadable == ("web-3",)
    row = get_release(ledger_engine, release_id)
    statuses = {h.host: h.status for h in row.hosts}
    assert statuses == {
        "web-1": HostStatus.switched,
        "web-2": HostStatus.skipped,
        "web-3": HostStatus.failed,
    }
    assert fleet_line(row.summary) == "1 of 3 hosts on v1, 1 on v2, 1 on unknown (unreadable)"


def test_the_crash_hook_reconciles_its_own_run_only(
    ledger_url: str,
    ledger_engine: Engine,
    clean_ssh_fleet: SshdFleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from quayside.tasks.release_crash import release_run_died

    fleet = clean_ssh_fleet
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(inventory_file(tmp_path, fleet)))
    monkeypatch.setenv("QUAYSIDE_DATABASE_URL", ledger_url)
    release_id = fleet_on_v1(ledger_engine, fleet)
    mark_running(ledger_engine, release_id)
    other = start_release(
        ledger_engine, "shop", "test", ReleaseKind.deploy, requested_by="bob", version="v3",
        flow_run_id="another-run", details={"release_id": R2},
    )  # fmt: skip
    mark_running(ledger_engine, other.id)
    for h in fleet:
        point(h.root, R2)

    flow_run = SimpleNamespace(id=RUN, parameters={"app": "shop", "env": "test", "ref": "v2"})
    state = SimpleNamespace(name="Crashed", message="Process exited with status code: -9.")
    release_run_died(None, flow_run, state)

    row = get_release(ledger_engine, release_id)
    assert row.status == ReleaseStatus.interrupted
    assert {h.status for h in row.hosts} == {HostStatus.switched}
    assert (
        f"flow run {RUN} is Crashed: Process exited with status code: -9."
        in ((row.details or {})["interrupted"])
    )
    assert get_release(ledger_engine, other.id).status == ReleaseStatus.running
