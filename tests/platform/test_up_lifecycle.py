"""`quayside up` and the processes it starts, for real: killed outright (SIGKILL), its children
end with it and the next `up` on the same data directory starts; a closed terminal (SIGHUP)
stops it like Ctrl-C; and processes a crashed `up` left behind are ended by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quayside.stack.stale_children import Child, pid_file, write_children
from quayside.stack.supervisor import port_free
from testbed.platform import Platform
from tests.platform.test_up import processes_with_home

pytestmark = [pytest.mark.xdist_group("up"), pytest.mark.prefect]

INVENTORY = "hosts:\n  here: {address: 127.0.0.1, transport: local}\ngroups:\n  demo: [here]\n"


def wait_until_gone(home: Path, timeout_s: float = 20.0) -> list[int]:
    """Poll until no process runs for ``home``; the pids still there at the deadline."""
    deadline = time.monotonic() + timeout_s
    left = processes_with_home(home)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_with_home(home)
    return left


def describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            out.append(f"{pid}: {b' '.join(argv).decode(errors='replace')}")
        except OSError:
            out.append(f"{pid}: gone")
    return out


def wait_for_fork_server(home: Path, timeout_s: float = 120.0) -> None:
    socket_file = home / "run" / "launcher.sock"
    deadline = time.monotonic() + timeout_s
    while not socket_file.exists():
        assert time.monotonic() < deadline, "the fork server did not start"
        time.sleep(0.2)


def test_up_killed_outright_takes_its_children_along_and_starts_again(tmp_path: Path) -> None:
    """SIGKILL gives `up` no chance to stop anything: the Prefect server, the worker, its fork
    server and the gateway get SIGTERM from the kernel (parent-death signal) and end within
    seconds; the ports are free and the next `up` on the same data directory comes up."""
    home = tmp_path / "home"
    inventory = tmp_path / "quayside.yaml"
    inventory.write_text(INVENTORY)
    first = Platform(home, inventory)
    first.start()
    try:
        wait_for_fork_server(home)
        children = processes_with_home(home)
        assert len(children) >= 4, describe(children)  # server, worker, fork server, gateway
        assert first.process is not None
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        left = wait_until_gone(home)
        assert left == [], describe(left)
        assert port_free("127.0.0.1", first.prefect_port)
        assert port_free("127.0.0.1", first.gateway_port)
    finally:
        first.stop()
    again = Platform(home, inventory)
    again.prefect_port, again.gateway_port = first.prefect_port, first.gateway_port
    again.start()
    assert again.stop() == 0
    assert wait_until_gone(home) == []


def test_stale_children_are_ended_and_sighup_stops_cleanly(tmp_path: Path) -> None:
    """A process a crashed `up` left (recorded in the data directory, running for it) is
    ended by the next `up`, which says so; a recorded pid now running for another data
    directory is left alone. SIGHUP (what a closed terminal sends) stops the platform like
    Ctrl-C: "stopped", exit code 0, nothing left running."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    inventory = tmp_path / "quayside.yaml"
    inventory.write_text(INVENTORY)
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    stale = subprocess.Popen(
        sleep, env={**os.environ, "QUAYSIDE_HOME": str(home)}, start_new_session=True
    )
    unrelated = subprocess.Popen(
        sleep, env={**os.environ, "QUAYSIDE_HOME": str(tmp_path / "other")}, start_new_session=True
    )
    write_children(
        pid_file(home),
        [Child("worker", stale.pid, tuple(sleep)), Child("gateway", unrelated.pid, tuple(sleep))],
    )
    platform = Platform(home, inventory)
    try:
        platform.start()
        assert stale.wait(timeout=10) == -signal.SIGTERM
        assert unrelated.poll() is None
        assert "ended 1 process(es) a killed `quayside up` left running here" in (
            platform.output.read_text()
        )
        assert platform.process is not None
        platform.process.send_signal(signal.SIGHUP)
        assert platform.process.wait(timeout=60) == 0
        assert "stopped" in platform.output.read_text()
        left = wait_until_gone(home)
        assert left == [], describe(left)
        assert not pid_file(home).exists()
    finally:
        platform.stop()
        for proc in (stale, unrelated):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
