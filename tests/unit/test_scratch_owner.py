"""Build directories of killed runs (issue 15): the next deploy of the app/env removes those
whose owner process is gone, or (holding the deploy lock) whose flow run is over; a live
owner's stay. Real processes: a finished child is a gone owner, this process a live one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Collection
from pathlib import Path

from quayside.scratch import BackgroundRemoval
from quayside.scratch_owner import (
    RunsOver,
    claim,
    owner_path,
    process_gone,
    read_owner,
    sweep_dead,
)


def make_build(builds: Path, name: str) -> Path:
    """A build directory with a file and its ``.stream`` directory, as a run leaves them."""
    build = builds / name
    (build / "lib").mkdir(parents=True)
    (build / "lib" / "a.php").write_text("<?php\n")
    stream = builds / f"{name}.stream"
    stream.mkdir()
    (stream / "payload.tar").write_bytes(b"x" * 100)
    return build


def gone_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def set_owner(build: Path, **changes: object) -> None:
    path = owner_path(build)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def sweep(builds: Path, runs_over: RunsOver | None) -> list[Path]:
    removal = BackgroundRemoval()
    removed = sweep_dead(builds, app="shop", env="test", runs_over=runs_over, removal=removal)
    removal.join()
    return removed


class Over:
    """What Prefect would answer: these runs are over; records what it was asked."""

    def __init__(self, *run_ids: str) -> None:
        self.run_ids = set(run_ids)
        self.asked: list[set[str]] = []

    def __call__(self, ids: Collection[str]) -> set[str]:
        self.asked.append(set(ids))
        return set(ids) & self.run_ids


def test_a_claim_names_this_process_and_run(tmp_path: Path) -> None:
    build = tmp_path / "builds" / "shop-test-r1-1"
    path = claim(build, "shop", "test", "run-1")
    assert path == tmp_path / "builds" / "shop-test-r1-1.owner"
    owner = read_owner(path)
    assert owner is not None
    assert (owner.app, owner.env, owner.flow_run_id, owner.pid) == (
        "shop",
        "test",
        "run-1",
        os.getpid(),
    )
    assert not process_gone(owner)
    assert not build.exists()  # claimed before it is made
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_the_builds_of_gone_processes_go_and_live_ones_stay(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    dead = make_build(builds, "shop-test-r1-1")
    claim(dead, "shop", "test", "run-dead")
    set_owner(dead, pid=gone_pid())
    other_app = make_build(builds, "blog-prod-r2-2")  # any app's: the process is gone
    claim(other_app, "blog", "prod", "run-blog")
    set_owner(other_app, pid=gone_pid())
    reused = make_build(builds, "shop-test-r3-3")  # its pid now runs a later process
    claim(reused, "shop", "test", "run-reused")
    set_owner(reused, pid_started=1)
    live = make_build(builds, "shop-test-r4-4")
    claim(live, "shop", "test", "run-live")

    removed = sweep(builds, None)  # a dry run: no lock, no question to Prefect

    assert sorted(p.name for p in removed) == [
        "blog-prod-r2-2.owner",
        "shop-test-r1-1.owner",
        "shop-test-r3-3.owner",
    ]
    assert sorted(p.name for p in builds.iterdir()) == [
        "shop-test-r4-4",
        "shop-test-r4-4.owner",
        "shop-test-r4-4.stream",
    ]
    assert (live / "lib" / "a.php").read_text() == "<?php\n"


def test_a_killed_process_its_parent_has_not_collected_is_gone(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        build = tmp_path / "builds" / "shop-test-r1-1"
        claim(build, "shop", "test", "run-1")
        started = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[19]
        set_owner(build, pid=child.pid, pid_started=int(started))
        owner = read_owner(owner_path(build))
        assert owner is not None and not process_gone(owner)  # running
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        assert process_gone(owner)  # a zombie: ended, not yet collected
    finally:
        child.kill()
        child.wait()


def test_under_the_lock_the_builds_of_runs_that_are_over_go(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    ended = make_build(builds, "shop-test-r1-1")  # its process lives on (say, a worker's)
    claim(ended, "shop", "test", "run-ended")
    running = make_build(builds, "shop-test-r2-2")
    claim(running, "shop", "test", "run-running")
    elsewhere = make_build(builds, "blog-prod-r3-3")  # over, but another app's lock
    claim(elsewhere, "blog", "prod", "run-ended-blog")
    other_machine = make_build(builds, "shop-test-r4-4")  # a pid of another boot: unknown
    claim(other_machine, "shop", "test", "run-other-machine")
    set_owner(other_machine, boot_id="another-boot", pid=gone_pid())

    runs_over = Over("run-ended", "run-ended-blog", "run-other-machine")
    removed = sweep(builds, runs_over)

    assert sorted(p.name for p in removed) == ["shop-test-r1-1.owner", "shop-test-r4-4.owner"]
    assert runs_over.asked == [{"run-ended", "run-running", "run-other-machine"}]  # shop/test's
    assert sorted(p.name for p in builds.iterdir()) == [
        "blog-prod-r3-3",
        "blog-prod-r3-3.owner",
        "blog-prod-r3-3.stream",
        "shop-test-r2-2",
        "shop-test-r2-2.owner",
        "shop-test-r2-2.stream",
    ]
    # without the lock the same runs' builds stay: their processes live
    assert sweep(builds, None) == []


def test_an_unreadable_owner_file_and_a_build_without_one_are_left(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    half = make_build(builds, "shop-test-r1-1")
    owner_path(half).write_text("{")  # being written, or damaged
    make_build(builds, "shop-test-r2-2")  # from before owner files: the age sweep's
    assert sweep(builds, Over("anything")) == []
    assert len(list(builds.iterdir())) == 5
