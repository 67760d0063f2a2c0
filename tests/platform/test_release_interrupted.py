"""Runs that die mid-release, for real (issue 15): a git-deploy run's process SIGKILLed while it
holds the deploy lock, and the whole platform SIGKILLed mid-deploy. Afterwards the next deploy
takes the dead run's lock over at once, the reconciling sweep marks the dead run's release
``interrupted`` with what every host serves, a run Prefect still shows Running is set
Crashed, and no lock is held by a dead run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from quayside.flows.git_deploy import git_deploy
from quayside.inventory import load_inventory
from quayside.ledger.audit import list_events
from quayside.ledger.locks import acquire, current_lock
from quayside.ledger.models import HostStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release, releases_of_run
from quayside.ledger.releases import mark_running, start_release
from quayside.runs import read_run, start_run
from quayside.runs.liveness import mark_crashed, run_life
from quayside.stack.reconcile_sweep import CRASHED_MESSAGE, sweep
from testbed.platform import PROJECT_DIR, Platform
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

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]


def run_processes(run_id: str) -> list[int]:
    """Processes of this machine started for flow run ``run_id`` (the worker gives the run's
    process its id in the environment)."""
    wanted = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(check: Any, what: str, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def locked_by(engine: Engine, run_id: str) -> bool:
    lock = current_lock(engine, "shop", "test")
    return lock is not None and lock.flow_run_id == run_id


def test_the_lock_of_a_killed_run_is_taken_over_and_its_release_reconciled(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    engine = ledger()
    hold = {"hooks": {"pre_switch": ["sleep 60"]}}  # the run waits on the hosts, lock held
    write_inventory(platform_inventory, fleet, repo, app=hold)
    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v1", "requested_by": "dave"}
    )
    wait_for(lambda: locked_by(engine, handle.id), "the run to take the lock")
    wait_for(lambda: releases_of_run(engine, handle.id), "the run's release")
    victims = run_processes(handle.id)
    assert victims, "no process of the run found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)  # an OOM kill of the run's process
    wait_for(lambda: read_run(handle.id).final, "Prefect to see the run end")
    assert read_run(handle.id).state_type == "CRASHED"

    # the next deploy does not wait out the dead run's lease: its lock is free
    write_inventory(platform_inventory, fleet, repo)
    result = run_flow(git_deploy, "shop", "test", "v1")
    for h in fleet:
        assert current_id(h) == result["release_id"]
        assert_complete(h)
    taken = [
        e
        for e in list_events(engine, action="lock.taken_over", limit=20)
        if (e.details or {})["dead_holder"]["flow_run_id"] == handle.id
    ]
    freed = [  # or a crash hook freed it first, reconciling the release
        e
        for e in list_events(engine, action="lock.released", limit=50)
        if (e.details or {}).get("flow_run_id") == handle.id and e.actor.startswith("reconcile")
    ]
    assert taken or freed
    if taken:
        assert "is Crashed" in (taken[0].details or {})["reason"]

    # the dead run's release was reconciled with the hosts before the next deploy changed
    # them (under its lock; or by a crash hook): nothing had switched, no host had a release
    dead = releases_of_run(engine, handle.id)[0]
    assert dead.status == ReleaseStatus.interrupted
    assert {h.host: h.status for h in dead.hosts} == {h.name: HostStatus.skipped for h in fleet}
    assert {h.serves for h in dead.hosts} == {None}
    again = sweep(engine, load_inventory(platform_inventory), started_at=datetime.now(UTC))
    assert not any(f"release {dead.id} " in line for line in again)  # once is enough
    assert current_lock(engine, "shop", "test") is None


def _prefect_run_in_state(state_type: str) -> str:
    """A run of a real deployment, scheduled a day ahead (no worker takes it), then forced
    into ``state_type`` as a run whose process vanished would be left."""
    import asyncio

    from prefect.client.schemas.objects import StateType
    from prefect.states import State

    from quayside.runs import prefect_client

    handle = start_run(
        "hello-release",
        {"app": "shop", "env": "test"},
        scheduled_at=datetime.now(UTC) + timedelta(days=1),
    )

    async def force() -> None:
        async with prefect_client() as client:
            await client.set_flow_run_state(
                handle.id, State(type=StateType(state_type)), force=True
            )

    asyncio.run(force())
    return handle.id


def test_the_sweep_crashes_runs_left_running_and_spares_live_ones(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    engine = ledger()
    ghost = _prefect_run_in_state("RUNNING")  # left Running by a killed platform
    started_at = datetime.now(UTC)
    live = _prefect_run_in_state("RUNNING")  # started after this `up`: not the sweep's
    rows = {}
    for run_id in (ghost, live):
        row = start_release(
            engine, "shop", "test", ReleaseKind.deploy, requested_by="ann", version="v9",
            flow_run_id=run_id, details={"release_id": "20260101T000000Z-cccccccccccc"},
        )  # fmt: skip
        mark_running(engine, row.id)
        rows[run_id] = row.id
    lock_owner = ghost
    if current_lock(engine, "shop", "test") is None:
        acquire(engine, "shop", "test", "ann (flow run ghost)", flow_run_id=lock_owner)

    lines = sweep(engine, load_inventory(platform_inventory), started_at=started_at)

    life = run_life(ghost)
    assert life.state_type == "CRASHED"
    assert read_run(ghost).message == CRASHED_MESSAGE
    assert read_run(live).state_type == "RUNNING"
    assert get_release(engine, rows[live]).status == ReleaseStatus.running
    interrupted = get_release(engine, rows[ghost])
    assert interrupted.status == ReleaseStatus.interrupted
    assert len(interrupted.hosts) == len(fleet)  # every host's facts were read
    assert any(str(rows[ghost]) in line and "set Crashed" in line for line in lines)
    assert current_lock(engine, "shop", "test") is None
    # the live one is left to its own run; end it for the tests after this one
    from quayside.ledger.releases import finish_release

    finish_release(engine, rows[live], ReleaseStatus.failed)


def test_the_sweep_crashes_a_run_left_running_whose_release_was_already_reconciled(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """A run stopped with the platform recorded its release itself, but the API server,
    stopping too, missed its last state: the next `up`'s sweep sets it Crashed all the same
    (seen in CI: Prefect showed it Running until the heartbeat window had passed)."""
    write_inventory(platform_inventory, clean_ssh_fleet, repo)
    engine = ledger()
    orphan = _prefect_run_in_state("RUNNING")  # no release of it is running in the ledger
    started_at = datetime.now(UTC)
    live = _prefect_run_in_state("RUNNING")  # after this `up` started: not the sweep's
    try:
        lines = sweep(engine, load_inventory(platform_inventory), started_at=started_at)
        assert read_run(orphan).state_type == "CRASHED"
        assert read_run(orphan).message == CRASHED_MESSAGE
        assert any(orphan in line and "set Crashed" in line for line in lines), lines
        assert read_run(live).state_type == "RUNNING"
    finally:
        mark_crashed(live, "ended by the test")


def test_a_platform_killed_mid_deploy_is_reconciled_by_the_next_up(
    tmp_path: Path, clean_ssh_fleet: SshdFleet, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every process of the platform SIGKILLed at once mid-deploy (a lost machine): Prefect
    keeps the run Running, the ledger keeps the release running and the lock held. The next
    `quayside up` sets the run Crashed, marks the release interrupted with what each host
    serves (equal to the hosts), frees the lock, and says so in one line."""
    from quayside.ledger.db import make_engine
    from quayside.ledger.release_queries import list_releases
    from testbed.platform import _refresh_prefect_settings
    from tests.platform.test_up import processes_with_home

    fleet = clean_ssh_fleet
    home = tmp_path / "home"
    inventory = tmp_path / "quayside.yaml"
    write_inventory(inventory, fleet, repo, app={"hooks": {"pre_switch": ["sleep 5"]}})
    first = Platform(home, inventory)
    first.start()
    engine = make_engine(f"sqlite:///{home / 'ledger.db'}")
    for key, value in (
        ("PREFECT_API_URL", first.api_url),
        ("PREFECT_API_AUTH_STRING", first.auth_string),
        ("QUAYSIDE_HOME", str(home)),
        ("QUAYSIDE_INVENTORY", str(inventory)),
    ):
        monkeypatch.setenv(key, value)
    _refresh_prefect_settings()
    again: Platform | None = None
    try:
        handle = start_run(
            "git-deploy", {"app": "shop", "env": "test", "ref": "v1", "requested_by": "erin"}
        )

        def running_release() -> Any:
            rows = list_releases(engine, "shop", "test", limit=5)
            return next(
                (r for r in rows if r.flow_run_id == handle.id and r.status == "running"), None
            )

        release = wait_for(running_release, "the deploy to be running")
        for pid in processes_with_home(home):  # everything at once: no hook, no handler runs
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert first.process is not None
        first.process.wait(timeout=10)
        wait_for(lambda: not processes_with_home(home), "the platform's processes to end")
        first.process = None
        assert get_release(engine, release.id).status == ReleaseStatus.running
        assert locked_by(engine, handle.id)

        again = Platform(home, inventory)
        again.prefect_port, again.gateway_port = first.prefect_port, first.gateway_port
        again.start()
        done = wait_for(
            lambda: get_release(engine, release.id).status != ReleaseStatus.running,
            "the sweep to reconcile the release",
        )
        assert done
        row = get_release(engine, release.id)
        assert row.status == ReleaseStatus.interrupted
        assert {h.host: h.serves for h in row.hosts} == {h.name: current_id(h) for h in fleet}
        assert read_run(handle.id).state_type == "CRASHED"
        assert read_run(handle.id).message == CRASHED_MESSAGE
        assert current_lock(engine, "shop", "test") is None
        told = wait_for(
            lambda: f"reconcile       release {release.id} " in again.output.read_text(),
            "up to say what it reconciled",
            timeout_s=30,
        )
        assert told
    finally:
        if again is not None:
            again.stop()
        first.stop()
        engine.dispose()
        monkeypatch.undo()
        _refresh_prefect_settings()


def quayside(platform: Platform, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env={**platform.env, "COLUMNS": "200"},
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_waits_for_a_live_lock_and_lists_a_mixed_fleet(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """`quayside deploy --wait-lock` waits for a live holder and then deploys; a release a
    dead run left with the fleet split reads as such in `quayside releases`."""
    from quayside.ledger.locks import release as release_lock

    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    engine = ledger()
    live = _prefect_run_in_state("RUNNING")  # a holder Prefect shows alive
    acquire(engine, "shop", "test", "carol (flow run live)", flow_run_id=live, version="v0")
    deploy = quayside(platform, "deploy", "shop", "test", "v1", "--wait-lock", "300")
    assert deploy.stdout is not None
    seen: list[str] = []
    try:
        for line in deploy.stdout:
            seen.append(line)
            if "waiting up to" in line and "locked by carol" in line:
                break
        else:
            pytest.fail("the deploy did not wait for the lock:\n" + "".join(seen))
    finally:
        release_lock(engine, "shop", "test", flow_run_id=live)  # the holder finishes
    rest, _ = deploy.communicate(timeout=300)
    assert deploy.returncode == 0, "".join(seen) + rest
    assert "completed" in rest
    v1 = current_id(fleet[0])
    assert v1 is not None and all(current_id(h) == v1 for h in fleet)

    # a dead run's release, the fleet split between it and v1
    rid = "20300101T000000Z-dddddddddddd"
    (fleet[0].root / "releases" / rid).mkdir()
    tmp = fleet[0].root / ".current.tmp"
    tmp.symlink_to(f"releases/{rid}")
    os.replace(tmp, fleet[0].root / "current")
    dead_run = "5f1b7a52-0000-4000-8000-00000000dead"  # not a run Prefect knows
    row = start_release(
        engine, "shop", "test", ReleaseKind.deploy, requested_by="dan", version="v2",
        flow_run_id=dead_run, details={"release_id": rid},
    )  # fmt: skip
    mark_running(engine, row.id)
    sweep(engine, load_inventory(platform_inventory), started_at=datetime.now(UTC))
    listing = quayside(platform, "releases", "shop", "test")
    out, _ = listing.communicate(timeout=60)
    assert listing.returncode == 0, out
    line = next(x for x in out.splitlines() if f" {row.id} " in x)
    assert "interrupted: 2 of 3 hosts on v1, 1 on v2" in line, out


def test_the_next_deploy_records_what_a_dead_run_left_before_it_changes_anything(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """A release left running by a run Prefect no longer has, with no lock held (its lock
    release went through, its last ledger write did not): the next deploy, under its lock,
    first records what the hosts serve for it, then deploys."""
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    engine = ledger()
    first = run_flow(git_deploy, "shop", "test", "v1")
    dead_run = "5f1b7a52-0000-4000-8000-0000000dead2"
    row = start_release(
        engine, "shop", "test", ReleaseKind.deploy, requested_by="dan", version="v2",
        flow_run_id=dead_run, details={"release_id": "20300101T000000Z-eeeeeeeeeeee"},
    )  # fmt: skip
    mark_running(engine, row.id)
    second = run_flow(git_deploy, "shop", "test", "v3")
    left = get_release(engine, row.id)
    assert left.status == ReleaseStatus.interrupted
    # recorded before the new deploy switched: every host still on v1 then
    assert {h.host: h.serves for h in left.hosts} == {h.name: first["release_id"] for h in fleet}
    assert {h.status for h in left.hosts} == {HostStatus.skipped}
    event = list_events(engine, subject_type="release", subject_id=row.id, limit=1)[0]
    assert event.action == "release.interrupted" and event.actor.startswith("reconcile:flow-run:")
    assert all(current_id(h) == second["release_id"] for h in fleet)


def test_the_platform_crashes_runs_whose_heartbeats_stop(platform: Platform) -> None:
    """`quayside up` keeps Prefect's heartbeat automation (a run silent for 3 default
    heartbeat intervals is Crashed); the same automation, with a short window and scoped to
    one run, crashes that run once its heartbeats stop on this server."""
    import asyncio

    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from quayside.runs import prefect_client
    from quayside.runs.heartbeats import WINDOW_S, ZOMBIE_AUTOMATION, zombie_automation

    async def installed() -> list[Any]:
        async with prefect_client() as client:
            return list(await client.read_automations_by_name(ZOMBIE_AUTOMATION))

    found = wait_for(lambda: asyncio.run(installed()), "up to install the automation", 120)
    assert len(found) == 1 and found[0].enabled
    assert found[0].trigger.within == timedelta(seconds=WINDOW_S)
    assert found[0].actions[0].state.value == "CRASHED"

    silent = _prefect_run_in_state("RUNNING")  # a run whose process and worker are gone
    probe = zombie_automation(10, name=f"test zombie {silent}", runs=f"prefect.flow-run.{silent}")

    async def create() -> Any:
        async with prefect_client() as client:
            return await client.create_automation(probe)

    async def delete(automation_id: Any) -> None:
        async with prefect_client() as client:
            await client.delete_automation(automation_id)

    automation_id = asyncio.run(create())
    try:
        # its last heartbeat, as the engine sends it; sent again while the run is not crashed,
        # because Prefect's trigger service loads a new automation on its own schedule and a
        # heartbeat it saw before that arms nothing (seen once on a loaded machine)
        for attempt in range(4):
            emit_event(
                "prefect.flow-run.heartbeat",
                resource={"prefect.resource.id": f"prefect.flow-run.{silent}"},
            )
            EventsWorker.drain_all()
            try:
                wait_for(
                    lambda: read_run(silent).state_type == "CRASHED", "the silent run to crash", 60
                )
                break
            except AssertionError:
                if attempt == 3:
                    raise
        assert "no heartbeat" in (read_run(silent).message or "")
    finally:
        asyncio.run(delete(automation_id))


def test_a_deploy_rides_out_a_ledger_held_by_another_writer(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """Another process holds the ledger's write lock (BEGIN IMMEDIATE) for longer than
    SQLite's busy timeout while the hosts switch: the release's writes wait and retry, and the
    ledger ends saying what the hosts serve, one row per host."""
    import threading

    from quayside.ledger.db import BUSY_TIMEOUT_S
    from quayside.ledger.release_queries import list_releases
    from quayside.settings import load_settings

    fleet = clean_ssh_fleet
    engine = ledger()
    database = load_settings().database_url.removeprefix("sqlite:///")
    if database == load_settings().database_url:
        pytest.skip("the platform's ledger is not SQLite")
    write_inventory(platform_inventory, fleet, repo, app={"hooks": {"pre_switch": ["sleep 2"]}})
    hold_s = BUSY_TIMEOUT_S + 5  # past one attempt's wait: only a retry gets through
    holder_script = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('held', flush=True)\n"
        f"time.sleep({hold_s})\n"
        "db.execute('ROLLBACK')\n"
        "print('released', time.time(), flush=True)\n"
    )
    holder: list[subprocess.Popen[str]] = []

    def hold_when_running() -> None:
        def running() -> bool:
            rows = list_releases(engine, "shop", "test", limit=1, with_hosts=False)
            return bool(rows) and rows[0].status == ReleaseStatus.running

        wait_for(running, "the deploy to run")
        holder.append(
            subprocess.Popen(
                [sys.executable, "-c", holder_script, database], stdout=subprocess.PIPE, text=True
            )
        )

    watcher = threading.Thread(target=hold_when_running)
    watcher.start()
    try:
        result = run_flow(git_deploy, "shop", "test", "v1")
    finally:
        watcher.join(150)
    assert holder, "the ledger was never held"
    out, _ = holder[0].communicate(timeout=60)
    words = out.split()
    assert words[:2] == ["held", "released"]  # it held the ledger and let go by itself
    row = list_releases(engine, "shop", "test", limit=1)[0]
    assert row.status == ReleaseStatus.succeeded
    assert row.finished_at is not None
    assert row.finished_at.timestamp() >= float(words[2])  # its end was written after
    assert {h.host: h.status for h in row.hosts} == {h.name: HostStatus.succeeded for h in fleet}
    for h in fleet:
        assert current_id(h) == result["release_id"]
        assert_complete(h)


def test_cli_names_the_hosts_of_a_run_that_did_not_complete(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """A deploy that ends Failed prints what the ledger recorded per host before its error
    line: the host that failed is named."""
    fleet = clean_ssh_fleet
    hook = {"pre_switch": ['test "$QUAYSIDE_HOST" != web-2']}
    write_inventory(platform_inventory, fleet, repo, app={"hooks": hook})
    deploy = quayside(platform, "deploy", "shop", "test", "v1")
    out, _ = deploy.communicate(timeout=300)
    assert deploy.returncode == 1, out
    assert re.search(r"release \d+ \(v1\): (failed|rolled_back)", out), out
    assert re.search(r"web-2\W+failed\W", out), out
    assert "ended Failed" in out
