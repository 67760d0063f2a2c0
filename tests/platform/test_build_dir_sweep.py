"""Build directories left by killed runs (issue 15) are removed by the next deploy of the
app/env: a dry run (no lock) removes those whose owner process is gone; a deploy (under the
lock) also those whose flow run is over in Prefect. A live run's build directory stays, and
the deploy's own goes when it ends."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from quayside.flows.git_deploy import git_deploy
from quayside.runs import start_run
from quayside.scratch_owner import claim, owner_path
from quayside.settings import load_settings
from testbed.platform import Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]


def left_build(builds: Path, name: str, flow_run_id: str, *, pid: int | None = None) -> Path:
    """A build directory, its stream directory and owner file, as a run of shop/test that
    was killed mid-deploy leaves them (``pid``: its process, default this one)."""
    build = builds / name
    (build / "lib").mkdir(parents=True)
    (build / "lib" / "a.php").write_text("<?php\n")
    (builds / f"{name}.stream").mkdir()
    (builds / f"{name}.stream" / "payload.tar").write_bytes(b"x" * 1000)
    claim(build, "shop", "test", flow_run_id)
    if pid is not None:
        path = owner_path(build)
        path.write_text(json.dumps({**json.loads(path.read_text()), "pid": pid}))
    return build


def gone_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def running_run() -> str:
    """A flow run Prefect shows Running (a day-ahead run of a real deployment, forced)."""
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
            await client.set_flow_run_state(handle.id, State(type=StateType.RUNNING), force=True)

    asyncio.run(force())
    return handle.id


def builds_of_shop(builds: Path) -> set[str]:
    return {p.name for p in builds.iterdir() if p.name.startswith("shop-test-")}


def wait_until(check: Any, what: str, timeout_s: float = 60.0) -> None:
    """The removals run in the background (an rm process each)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_next_deploy_removes_the_build_dirs_of_dead_runs(
    run_flow: Any,
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    builds = load_settings().home / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    for name in builds_of_shop(builds):  # other tests' leftovers would blur the listing
        subprocess.run(["rm", "-rf", "--", str(builds / name)], check=True)

    killed = left_build(builds, "shop-test-killed-1", str(uuid4()), pid=gone_pid())
    ended = left_build(builds, "shop-test-ended-2", str(uuid4()))  # over: Prefect has no run
    live = left_build(builds, "shop-test-live-3", running_run())
    everything = builds_of_shop(builds)
    assert len(everything) == 9

    # a dry run takes no lock: only the build whose process is gone goes
    run_flow(git_deploy, "shop", "test", "v1", dry_run=True)
    wait_until(lambda: not owner_path(killed).exists(), "the killed run's build to go")
    kept = {n for n in everything if not n.startswith(killed.name)}
    wait_until(lambda: builds_of_shop(builds) == kept, "the dry run's own build to go")
    assert all(current_id(h) is None for h in fleet)  # the dry run touched no host

    # the deploy holds shop/test's lock: the build of a run that is over goes too
    result = run_flow(git_deploy, "shop", "test", "v1")
    for h in fleet:
        assert current_id(h) == result["release_id"]
        assert_complete(h)
    left = {live.name, f"{live.name}.stream", f"{live.name}.owner"}
    wait_until(lambda: builds_of_shop(builds) == left, "only the live run's build to stay")
    assert not ended.exists()
    assert (live / "lib" / "a.php").read_text() == "<?php\n"
    assert (builds / f"{live.name}.stream" / "payload.tar").stat().st_size == 1000
    assert json.loads(owner_path(live).read_text())["pid"] == os.getpid()
    # the "live" build is this test's own: gone with it, or later tests of shop/test see it
    for name in builds_of_shop(builds):
        subprocess.run(["rm", "-rf", "--", str(builds / name)], check=True)
