"""Processes that end with ``quayside up`` (quayside.stack.parent_death) and the record that
lets the next ``up`` end what a killed one left (quayside.stack.stale_children): real
processes, no platform."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quayside.stack.parent_death import preexec
from quayside.stack.stale_children import (
    Child,
    end_stale_children,
    pid_file,
    read_children,
    stale_processes,
    write_children,
)

SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether ``pid`` has exited (or is a zombie) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat[stat.rfind(")") + 2 :].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_child_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A parent starts a child with the preexec `up` uses, then is SIGKILLed: the child ends."""
    out = tmp_path / "child.pid"
    parent_code = (
        "import subprocess, sys, time\n"
        "from quayside.stack.parent_death import preexec\n"
        f"child = subprocess.Popen({SLEEP!r}, start_new_session=True, preexec_fn=preexec())\n"
        f"open({str(out)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=Path.cwd())
    try:
        deadline = time.monotonic() + 60
        while not out.exists() or not out.read_text():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        child = int(out.read_text())
        assert not gone(child, 0.2)
        parent.kill()
        parent.wait(timeout=10)
        assert gone(child), f"child {child} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_preexec_is_harmless_for_a_living_parent(
    started: list[subprocess.Popen[bytes]],
) -> None:
    proc = subprocess.Popen(SLEEP, preexec_fn=preexec(), start_new_session=True)
    started.append(proc)
    assert not gone(proc.pid, 0.3)
    assert os.getpgid(proc.pid) == proc.pid


def test_the_record_round_trips_and_tolerates_garbage(tmp_path: Path) -> None:
    path = pid_file(tmp_path)
    children = [Child("worker", 123, ("python", "-m", "x")), Child("gateway", 456, ("py",))]
    write_children(path, children)
    assert read_children(path) == children
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("{not json")
    assert read_children(path) == []
    assert read_children(tmp_path / "missing.json") == []


def test_stale_children_of_this_home_are_ended_and_nothing_else(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    """What a killed `up` left: a leader (its own group) and a member of its group, both with
    QUAYSIDE_HOME=home. Left alone: a recorded pid running for another data directory, and a
    recorded leader whose program changed (a reused pid)."""
    home = tmp_path / "home"
    home.mkdir()
    other = tmp_path / "other"
    env = {**os.environ, "QUAYSIDE_HOME": str(home)}
    member_pid = tmp_path / "member.pid"
    leader_code = (  # like the worker and its fork server: a child in the leader's group
        "import subprocess, time\n"
        f"child = subprocess.Popen({SLEEP!r})\n"
        f"open({str(member_pid)!r}, 'w').write(str(child.pid))\n"
        "child.wait()\n"
    )
    leader = subprocess.Popen([sys.executable, "-c", leader_code], env=env, start_new_session=True)
    started.append(leader)
    deadline = time.monotonic() + 60
    while not member_pid.exists() or not member_pid.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    member = int(member_pid.read_text())
    foreign = subprocess.Popen(
        SLEEP, env={**os.environ, "QUAYSIDE_HOME": str(other)}, start_new_session=True
    )
    started.append(foreign)
    reused = subprocess.Popen(["sleep", "600"], env=env, start_new_session=True)
    started.append(reused)
    write_children(
        pid_file(home),
        [
            Child("worker", leader.pid, (sys.executable, "-c", leader_code)),
            Child("gateway", foreign.pid, tuple(SLEEP)),
            Child("prefect-server", reused.pid, tuple(SLEEP)),
        ],
    )
    assert stale_processes(home, read_children(pid_file(home))) == sorted([leader.pid, member])
    assert sorted(end_stale_children(home)) == sorted([leader.pid, member])
    assert leader.wait(timeout=10) == -signal.SIGTERM
    assert gone(member)
    assert foreign.poll() is None and reused.poll() is None
    assert not pid_file(home).exists()
    assert end_stale_children(home) == []  # nothing recorded: nothing to do
