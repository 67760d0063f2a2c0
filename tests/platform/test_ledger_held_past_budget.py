"""The ledger held by another writer for longer than the busy-retry budget while the hosts
switch (issue 15 item 2): a real second process holds SQLite's write lock (``BEGIN
IMMEDIATE``) from before the switch until the deploy has given up. The ledger must never say
the opposite of the hosts: the release stays ``running`` with no host rows (nothing false
written), the run fails with one line naming the hosts that serve the release, and once the
writer lets go one reconcile (the sweep ``quayside up`` runs) records what each host serves
and frees the dead run's lock."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from quayside.errors import LedgerError
from quayside.flows.git_deploy import git_deploy
from quayside.inventory import load_inventory
from quayside.ledger.busy import BUDGET_ENV
from quayside.ledger.locks import current_lock
from quayside.ledger.models import HostStatus, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases
from quayside.release.fleet_summary import fleet_line
from quayside.settings import load_settings
from quayside.stack.reconcile_sweep import sweep
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    ledger,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet
from tests.platform.test_release_interrupted import wait_for

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect, pytest.mark.ssh]

HOLDER = (
    "import sqlite3, sys\n"
    "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "db.execute('BEGIN IMMEDIATE')\n"
    "print('held', flush=True)\n"
    "sys.stdin.readline()\n"  # hold until told
    "db.execute('ROLLBACK')\n"
    "print('released', flush=True)\n"
)


def hold_once_running(
    engine: Any, database: str, last_id: int
) -> tuple[threading.Thread, list[subprocess.Popen[str]]]:
    """A thread that, once a release newer than ``last_id`` of shop/test is running, starts
    a second process holding SQLite's write lock on ``database`` (until told on its stdin)."""
    holder: list[subprocess.Popen[str]] = []

    def hold_when_running() -> None:
        def running() -> bool:
            rows = list_releases(engine, "shop", "test", limit=1, with_hosts=False)
            return bool(rows) and rows[0].id > last_id and rows[0].status == ReleaseStatus.running

        wait_for(running, "the deploy to run")
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, database],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holder.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"

    watcher = threading.Thread(target=hold_when_running)
    watcher.start()
    return watcher, holder


def test_a_ledger_held_past_the_budget_during_the_switch_ends_equal_to_the_hosts(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = clean_ssh_fleet
    engine = ledger()
    database = load_settings().database_url.removeprefix("sqlite:///")
    if database == load_settings().database_url:
        pytest.skip("the platform's ledger is not SQLite")
    # the run's ledger writes give up after one attempt (the default budget stays 30 s)
    monkeypatch.setenv(BUDGET_ENV, "1")
    # the hosts wait 2 s before switching: the other writer holds the ledger by then
    write_inventory(platform_inventory, fleet, repo, app={"hooks": {"pre_switch": ["sleep 2"]}})
    before = list_releases(engine, "shop", "test", limit=1, with_hosts=False)
    last_id = before[0].id if before else 0
    watcher, holder = hold_once_running(engine, database, last_id)
    try:
        with pytest.raises(LedgerError) as raised:
            run_flow(git_deploy, "shop", "test", "v1")
    finally:
        watcher.join(150)
        assert holder, "the ledger was never held"
    process = holder[0]
    try:
        assert process.poll() is None  # it held the ledger through the whole run
        # every host switched, to a complete release
        served = {h.name: current_id(h) for h in fleet}
        rid = served[fleet[0].name]
        assert rid is not None and set(served.values()) == {rid}
        for h in fleet:
            assert_complete(h)
        # the user is told in one line, naming the hosts that serve the release
        line = str(raised.value).splitlines()[0]
        assert all(h.name in line for h in fleet), line
        assert "v1" in line and "busy" in line, line
    finally:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "released"
        process.wait(timeout=30)

    # nothing false was written while it held: the release is running, no host says failed
    row = list_releases(engine, "shop", "test", limit=1)[0]
    assert row.id > last_id and row.details and row.details.get("release_id") == rid
    assert row.status == ReleaseStatus.running
    assert all(h.status is not HostStatus.failed for h in row.hosts)

    # one reconcile after the writer let go: the ledger equals the hosts
    lines = sweep(engine, load_inventory(platform_inventory), started_at=datetime.now(UTC))
    done = get_release(engine, row.id)
    assert done.status == ReleaseStatus.interrupted
    assert {h.host: (h.status, h.serves) for h in done.hosts} == {
        h.name: (HostStatus.switched, current_id(h)) for h in fleet
    }
    assert fleet_line(done.summary) == f"{len(fleet)} of {len(fleet)} hosts on v1"
    told = next(x for x in lines if f"release {row.id} " in x)
    assert all(h.name in told for h in fleet), told
    assert current_lock(engine, "shop", "test") is None


def test_past_the_threshold_switched_hosts_go_back_though_the_ledger_is_held(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One host fails (threshold 0) in the batch whose rows the held ledger refuses: the
    hosts that switched go back to v1 first, and the run then says the ledger is behind."""
    fleet = clean_ssh_fleet
    engine = ledger()
    database = load_settings().database_url.removeprefix("sqlite:///")
    if database == load_settings().database_url:
        pytest.skip("the platform's ledger is not SQLite")
    write_inventory(platform_inventory, fleet, repo)
    run_flow(git_deploy, "shop", "test", "v1")
    v1 = {h.name: current_id(h) for h in fleet}
    monkeypatch.setenv(BUDGET_ENV, "1")
    failing = fleet[1].name
    hook = {"pre_switch": ["sleep 2", f'test "$QUAYSIDE_HOST" != {failing}']}
    write_inventory(
        platform_inventory, fleet, repo, app={"hooks": hook}, env={"failure_threshold": 0}
    )
    last_id = list_releases(engine, "shop", "test", limit=1, with_hosts=False)[0].id
    watcher, holder = hold_once_running(engine, database, last_id)
    try:
        with pytest.raises(LedgerError) as raised:
            run_flow(git_deploy, "shop", "test", "v2")
    finally:
        watcher.join(150)
        assert holder, "the ledger was never held"
    process = holder[0]
    try:
        # every host is back on v1 (the failed one never left it), complete
        assert {h.name: current_id(h) for h in fleet} == v1
        for h in fleet:
            assert_complete(h)
        line = str(raised.value).splitlines()[0]
        assert line.startswith("none of ") and "serves v2 of shop/test" in line, line
        assert all(h.name in line for h in fleet), line
    finally:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "released"
        process.wait(timeout=30)
    row = list_releases(engine, "shop", "test", limit=1)[0]
    assert row.id > last_id and row.status == ReleaseStatus.running
    # one reconcile: no host serves the release, and the ledger says so
    sweep(engine, load_inventory(platform_inventory), started_at=datetime.now(UTC))
    done = get_release(engine, row.id)
    assert done.status == ReleaseStatus.interrupted
    assert all(h.status is not HostStatus.switched for h in done.hosts), done.hosts
    assert current_lock(engine, "shop", "test") is None
