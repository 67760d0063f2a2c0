"""A release run stopped from outside, for real (issue 15): cancelled through the Prefect API
mid-deploy, and its flow-run process alone SIGKILLed mid-transfer.

Cancelled: Prefect runs the crash/cancellation hook inside the run's own process while the
release body still runs in its thread; the hook stops the body first (no host switches after
it, every process the run started killed), then records what the hosts serve. Afterwards:
every host on a complete release, the release ``interrupted`` with one row per host equal to
what it serves and nothing switched after that record, the lock free, no process of the run
left, and the CLI following the run prints the reconcile's line naming the hosts.

SIGKILLed (the flow-run process only, not the ``ssh``/tar children it started): those die
with it, no host switches or keeps a partial release, the run is Crashed, the release
reconciled, the lock free."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from quayside.flows.git_deploy import git_deploy
from quayside.ledger.locks import current_lock
from quayside.ledger.models import HostStatus, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases, releases_of_run
from quayside.runs import read_run, start_run
from testbed.platform import PROJECT_DIR, Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    ledger,
    release_ids,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet, SshdHost

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect, pytest.mark.ssh]

#: the pre-switch hook of batch 1: says it started, then holds the run there
IN_HOOK = 'touch "$QUAYSIDE_DEPLOY_ROOT/in-hook"; sleep 5'


def run_processes(run_id: str) -> list[int]:
    """Processes of this machine carrying flow run ``run_id`` in their environment."""
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


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^PPid:\s*(\d+)", status, re.M)
    return int(match.group(1)) if match else None


def wait_for(check: Any, what: str, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def run_release(run_id: str) -> Any:
    """The ledger release flow run ``run_id`` recorded, once it has one."""
    rows = releases_of_run(ledger(), run_id)
    return rows[0] if rows else None


def cancel_through_api(run_id: str) -> None:
    """What the UI's Cancel does: the run set Cancelling; its worker then stops it."""
    from prefect.states import Cancelling

    from quayside.runs import prefect_client

    async def cancel() -> None:
        async with prefect_client() as client:
            await client.set_flow_run_state(
                run_id, Cancelling(message="cancelled by the test"), force=True
            )

    asyncio.run(cancel())


def switched_at(host: SshdHost) -> float:
    """When ``current`` was last replaced on ``host`` (the link is renamed into place)."""
    return os.lstat(host.root / "current").st_mtime


def assert_ledger_equals_hosts(release_id: int, fleet: SshdFleet, said: str = "") -> Any:
    """The release is interrupted with one row per host saying what that host serves, and
    no host's ``current`` changed after the record was written (``said``: what the CLI
    printed, shown when it is not)."""
    row = get_release(ledger(), release_id)
    assert row.status == ReleaseStatus.interrupted, f"{row.status}\n{said}"
    assert {h.host: h.serves for h in row.hosts} == {h.name: current_id(h) for h in fleet}
    assert row.finished_at is not None
    for h in fleet:
        assert_complete(h)
        assert switched_at(h) <= row.finished_at.timestamp(), f"{h.name} switched after"
    return row


def quayside_cli(platform: Platform, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env={**platform.env, "COLUMNS": "250"},
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_deploy_cancelled_mid_batch_switches_nothing_after_its_record(
    run_flow: Any,
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    first = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    write_inventory(
        platform_inventory,
        fleet,
        repo,
        app={"hooks": {"pre_switch": [IN_HOOK]}},
        env={"batch": 2},  # batch 1: web-1, web-2; batch 2: web-3
    )
    before = max(r.id for r in list_releases(ledger(), "shop", "test", limit=1))
    deploy = quayside_cli(platform, "deploy", "shop", "test", "v2")
    try:

        def v2_run() -> str | None:
            rows = list_releases(ledger(), "shop", "test", limit=3, with_hosts=False)
            return next(
                (
                    r.flow_run_id
                    for r in rows
                    if r.version == "v2" and r.flow_run_id and r.id > before
                ),
                None,
            )

        run_id = wait_for(v2_run, "the deploy to record its release")
        wait_for(
            lambda: all((h.root / "in-hook").exists() for h in fleet[:2]),
            "batch 1's pre-switch hooks",
        )
        cancel_through_api(run_id)
        out, _ = deploy.communicate(timeout=180)
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait()
    assert deploy.returncode != 0, out
    final = wait_for(lambda: read_run(run_id).final and read_run(run_id), "the run to end")
    assert final.state_type in {"CANCELLED", "CRASHED"}, final
    wait_for(lambda: not run_processes(run_id), "every process of the run to end", 30)
    release = wait_for(
        lambda: (r := run_release(run_id)) is not None and r.status != "running" and r,
        "the release to be reconciled",
        30,
    )
    # a host the run's body switched after the record would show here: wait past the hook
    time.sleep(6)
    row = assert_ledger_equals_hosts(release.id, fleet, out)
    assert all(current_id(h) == first for h in fleet)  # nothing switched: all on v1
    assert {h.status for h in row.hosts} == {HostStatus.skipped}
    assert current_lock(ledger(), "shop", "test") is None
    # the CLI that followed the run printed the reconcile's line, naming every host
    line = (row.summary or {})["line"]
    assert "web-1" in line and "web-2" in line and "web-3" in line, line
    assert line in out.replace("\n", " ") or line in out, out
    listing = quayside_cli(platform, "releases", "shop", "test")
    listed, _ = listing.communicate(timeout=60)
    assert listing.returncode == 0, listed
    assert re.search(rf" {row.id} .*interrupted: 3 of 3 hosts on v1", listed), listed


def _flow_run_process(run_id: str) -> int | None:
    """The flow-run process of ``run_id`` while it streams a stage to a host: the parent of
    an ``ssh`` client it started (``setpriv`` execs the client, so that is the run)."""
    for pid in run_processes(run_id):
        argv = _cmdline(pid)
        if argv and os.path.basename(argv[0]) == "ssh" and any("stage" in a for a in argv):
            return _parent(pid)
    return None


def test_a_flow_run_process_killed_mid_transfer_takes_its_transfers_with_it(
    run_flow: Any,
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    first = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    repo.commit({"big.bin": os.urandom(100 * 1024 * 1024)}, tag="big")
    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "big", "requested_by": "dave"}
    )
    victim = wait_for(lambda: _flow_run_process(handle.id), "the transfer to start", 240)
    children = [p for p in run_processes(handle.id) if _parent(p) == victim]
    assert children, "the run's transfers were not found"
    os.kill(victim, signal.SIGKILL)  # the flow-run process only: not its ssh/tar children

    wait_for(lambda: not run_processes(handle.id), "every process of the run to end", 15)
    final = wait_for(lambda: read_run(handle.id).final and read_run(handle.id), "Prefect", 60)
    assert final.state_type == "CRASHED", final
    release = wait_for(
        lambda: (r := run_release(handle.id)) is not None and r.status != "running" and r,
        "the crash hook to reconcile the release",
        60,
    )
    row = assert_ledger_equals_hosts(release.id, fleet)
    assert all(current_id(h) == first for h in fleet)
    for h in fleet:  # the stage scripts saw end-of-file, not a go: they left nothing
        wait_for(lambda h=h: release_ids(h) == [first], f"{h.name}'s partial release to go", 30)
        assert not list(h.root.glob(".current.tmp*")), h.name
    assert {h.status for h in row.hosts} == {HostStatus.skipped}
    assert current_lock(ledger(), "shop", "test") is None


def _follow_to_the_end(run_id: str) -> Any:
    from quayside.runs import follow_run

    for _ in follow_run(run_id, poll_s=0.5, timeout_s=300):
        pass
    return read_run(run_id)


def test_quayside_up_stopped_mid_deploy_leaves_the_ledger_equal_to_the_hosts(
    tmp_path: Path, clean_ssh_fleet: SshdFleet, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP (a closed terminal) to `quayside up` during batch 1 of a deploy: the stack
    SIGTERMs the run with everything else; no host switches after the run's release is
    recorded, and after the next `up` the release is interrupted with rows equal to the
    hosts, the run final in Prefect, the lock free, nothing of the run left."""
    from quayside.ledger.db import make_engine
    from testbed.platform import _refresh_prefect_settings
    from tests.platform.test_up import processes_with_home

    fleet = clean_ssh_fleet
    home = tmp_path / "home"
    inventory = tmp_path / "quayside.yaml"
    write_inventory(inventory, fleet, repo)
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
        v1 = start_run("git-deploy", {"app": "shop", "env": "test", "ref": "v1"})
        assert _follow_to_the_end(v1.id).state_type == "COMPLETED"
        on_v1 = current_id(fleet[0])
        write_inventory(
            inventory, fleet, repo, app={"hooks": {"pre_switch": [IN_HOOK]}}, env={"batch": 2}
        )
        handle = start_run("git-deploy", {"app": "shop", "env": "test", "ref": "v2"})
        wait_for(
            lambda: all((h.root / "in-hook").exists() for h in fleet[:2]),
            "batch 1's pre-switch hooks",
        )
        assert first.process is not None
        first.process.send_signal(signal.SIGHUP)
        first.process.wait(timeout=90)
        first.process = None
        wait_for(lambda: not processes_with_home(home), "the platform's processes to end", 60)
        assert not run_processes(handle.id)
        rows = releases_of_run(engine, handle.id)
        assert rows, "the run recorded no release"

        again = Platform(home, inventory)
        again.prefect_port, again.gateway_port = first.prefect_port, first.gateway_port
        again.start()
        wait_for(
            lambda: get_release(engine, rows[0].id).status != ReleaseStatus.running,
            "the release to be reconciled",
            60,
        )
        time.sleep(6)  # past the hook's sleep: a host switched late would show
        row = get_release(engine, rows[0].id)
        assert row.status == ReleaseStatus.interrupted, row.status
        assert {h.host: h.serves for h in row.hosts} == {h.name: current_id(h) for h in fleet}
        assert row.finished_at is not None
        for h in fleet:
            assert_complete(h)
            assert switched_at(h) <= row.finished_at.timestamp(), f"{h.name} switched after"
        assert all(current_id(h) == on_v1 for h in fleet)
        assert wait_for(lambda: read_run(handle.id).final, "the run to be final", 60)
        assert current_lock(engine, "shop", "test") is None
        line = (row.summary or {})["line"]
        assert all(h.name in line for h in fleet), line
    finally:
        if again is not None:
            again.stop()
        first.stop()
        engine.dispose()
        monkeypatch.undo()
        _refresh_prefect_settings()
