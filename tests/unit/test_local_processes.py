"""The local process runner (quayside.executors.local_processes) on real processes: what it
starts behaves as subprocess would, lives as long as it is needed (also when the thread that
asked for it has ended), and dies when the process that started it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quayside.executors import local_processes

DEADLINE_S = 30  # generous: only a bound on waiting, never a timing assertion


@pytest.fixture(params=["setpriv", "preexec"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both ways of asking for the parent-death signal: setpriv, and the preexec fallback."""
    if request.param == "preexec":
        monkeypatch.setattr(local_processes, "_setpriv_path", lambda: None)
    elif local_processes._setpriv_path() is None:
        pytest.skip("setpriv with --pdeathsig is not installed")
    yield request.param


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it counts as dead)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {DEADLINE_S}s: {what}")
        time.sleep(0.05)


def test_run_captures_text_and_shows_the_argv_it_was_given() -> None:
    done = local_processes.run(["sh", "-c", 'printf "%s" "$1"; echo err >&2; exit 3', "sh", "ü"])
    assert done.returncode == 3
    assert done.stdout == "ü" and done.stderr == "err\n"
    assert done.args == ["sh", "-c", 'printf "%s" "$1"; echo err >&2; exit 3', "sh", "ü"]


def test_run_feeds_input_and_uses_cwd_env_and_umask(tmp_path: Path) -> None:
    done = local_processes.run(
        ["sh", "-c", 'cat; echo "$Q"; pwd; touch f'],
        input=b"in\n",
        cwd=tmp_path,
        env={"Q": "v", "PATH": os.environ["PATH"]},
        umask=0o077,
    )
    assert done.stdout == f"in\nv\n{tmp_path}\n"
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600


def test_a_missing_program_raises_as_popen_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        local_processes.start(["quayside-no-such-program"])
    with pytest.raises(FileNotFoundError):
        local_processes.run([str(tmp_path / "missing")])
    (tmp_path / "plain").write_text("not a program")
    with pytest.raises(PermissionError):
        local_processes.run(["./plain"], cwd=tmp_path)


def test_a_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    with pytest.raises(subprocess.TimeoutExpired):
        local_processes.run(
            ["sh", "-c", 'sleep 300 & echo $! > "$1"; wait', "sh", str(pid_file)],
            timeout=1,
            new_session=True,
        )
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not alive(grandchild), "the timed-out command's child is gone")


def test_a_process_started_from_a_short_lived_thread_runs_until_it_is_done(
    mechanism: str, tmp_path: Path
) -> None:
    marker = tmp_path / "done"
    started: list[subprocess.Popen[bytes]] = []

    def short_lived() -> None:
        started.append(
            local_processes.start(["sh", "-c", 'sleep 1; echo done > "$1"', "sh", str(marker)])
        )

    thread = threading.Thread(target=short_lived)
    thread.start()
    thread.join()  # the thread that asked for the process has ended
    assert started[0].wait(DEADLINE_S) == 0  # not killed when its thread ended
    assert marker.read_text() == "done\n"


CHILD = r"""
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from quayside.executors import local_processes

def from_a_worker_thread():
    return local_processes.start(["sleep", "300"])

with ThreadPoolExecutor(1) as pool:
    plain = pool.submit(from_a_worker_thread).result()
session = local_processes.start(
    ["sh", "-c", 'sleep 300 & echo $!; wait'], stdout=local_processes.PIPE, new_session=True
)
grandchild = session.stdout.readline().decode().strip()
print(plain.pid, session.pid, grandchild, flush=True)
threading.Event().wait()
"""


def test_children_and_their_sessions_die_when_their_parent_is_killed(mechanism: str) -> None:
    code = CHILD
    if mechanism == "preexec":
        code = (
            "from quayside.executors import local_processes\n"
            "local_processes._setpriv_path = lambda: None\n" + CHILD
        )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        pids = [int(word) for word in parent.stdout.readline().split()]
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    for pid in pids:
        wait_until(lambda pid=pid: not alive(pid), f"process {pid} of the killed parent is gone")
