"""A controller killed outright (SIGKILL) takes its SSH work with it: a Python process runs
remote commands through the OpenSSH transport from worker threads and is SIGKILLed; its local
``ssh`` clients and producers end, and the remote commands see end-of-file or end, so nothing
keeps streaming to a host or runs on there for a dead controller."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quayside.executors.control import close_masters, control_dir, control_sockets
from testbed.sshd import SshdFleet, SshdHost, descendants

pytestmark = pytest.mark.ssh

DEADLINE_S = 30  # generous: only a bound on waiting, never a timing assertion

#: The controller: one SSHExecutor (OpenSSH transport), a remote command started from a worker
#: thread, then it waits to be killed.
CONTROLLER = r"""
import json, os, sys, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from quayside.executors import local_processes
from quayside.executors.ssh import SSHExecutor

spec = json.loads(sys.argv[1])
executor = SSHExecutor(
    "web-1", spec["address"], spec["port"], spec["user"], Path(spec["key_file"]),
    Path(spec["known_hosts"]), control_dir=Path(spec["sockets"]) if spec["sockets"] else None,
    persist_s=30 if spec["sockets"] else 0,
)
pool = ThreadPoolExecutor(2)
if spec["mode"] == "long":
    pool.submit(executor.run, ["sh", "-c", spec["script"], "sh", *spec["args"]])
else:  # a local producer streams into the remote command's standard input, as tar does
    fifo = Path(spec["fifo"])
    os.mkfifo(fifo)
    pool.submit(executor.run, ["sh", "-c", spec["script"], "sh", *spec["args"]], stdin=fifo)
    with open(fifo, "wb") as sink:
        local_processes.start(
            ["sh", "-c", "while :; do echo data; sleep 0.1; done"], stdout=sink
        )
threading.Event().wait()
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {DEADLINE_S}s: {what}")
        time.sleep(0.05)


@pytest.fixture
def host(clean_ssh_fleet: SshdFleet) -> SshdHost:
    return clean_ssh_fleet[0]


@pytest.fixture
def sockets(tmp_path: Path) -> Iterator[Path]:
    directory = control_dir(tmp_path / "h")
    yield directory
    close_masters(directory)


def start_controller(host: SshdHost, **spec: object) -> subprocess.Popen[bytes]:
    settings = {
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key_file": str(host.key_file),
        "known_hosts": str(host.known_hosts),
        **spec,
    }
    return subprocess.Popen([sys.executable, "-c", CONTROLLER, json.dumps(settings)])


def kill_and_check_local_processes(controller: subprocess.Popen[bytes], ready: Path) -> None:
    """Wait for the remote command to run, SIGKILL the controller, and wait for every local
    process it had started to end (``ssh`` clients, producers). A persisted connection's
    master (``ControlPersist``) is not among them: it leaves the client's process tree when it
    starts, as the connection cache later runs use."""
    try:
        wait_until(ready.exists, f"the remote command started ({ready})")
        wait_until(lambda: ready.read_text().strip().isdigit(), "the remote pid was written")
        started = {pid: command_line(pid) for pid in descendants(controller.pid)}
        assert any(line.startswith("ssh ") for line in started.values()), started
    finally:
        controller.kill()
        controller.wait()
    for pid, line in started.items():
        wait_until(lambda pid=pid: not alive(pid), f"{line} (pid {pid}) ended with the controller")


def test_a_killed_controller_ends_its_long_remote_command_on_a_persisted_connection(
    host: SshdHost, sockets: Path
) -> None:
    ready, go = host.root / "long.pid", host.root / "go"
    controller = start_controller(
        host,
        sockets=str(sockets),
        mode="long",
        # silent until told: nothing it sends can end the local ssh client (SIGPIPE on the dead
        # controller's pipe), only the controller's death can
        script='echo $$ > "$1"; while [ ! -e "$2" ]; do sleep 0.1; done; '
        "while :; do echo tick; sleep 0.2; done",
        args=[str(ready), str(go)],
    )
    kill_and_check_local_processes(controller, ready)
    go.touch()
    remote = int(ready.read_text())
    wait_until(lambda: not alive(remote), "the remote command ended: its session was closed")
    masters = control_sockets(sockets)  # the connection cache stays for the next run
    assert len(masters) == 1
    check = ["ssh", "-o", f"ControlPath={masters[0]}", "-O", "check", "quayside-control"]
    assert subprocess.run(check, capture_output=True, check=False).returncode == 0


def test_a_killed_controller_ends_its_producer_and_the_remote_reader_sees_eof(
    host: SshdHost, tmp_path: Path
) -> None:
    ready = host.root / "reader.pid"
    saw_eof = host.root / "saw-eof"
    controller = start_controller(
        host,
        sockets="",
        mode="stdin",
        fifo=str(tmp_path / "payload.fifo"),
        script='echo $$ > "$1"; cat > /dev/null; echo eof > "$2"',
        args=[str(ready), str(saw_eof)],
    )
    kill_and_check_local_processes(controller, ready)
    wait_until(saw_eof.exists, "the remote command saw end-of-file on its standard input")
    remote = int(ready.read_text())
    wait_until(lambda: not alive(remote), "the remote command ended")
