"""Run the platform's processes, watch them, and stop all of them together.

Each child gets its own process group, so stopping it also stops what it started (the
worker's flow-run subprocesses). If one child exits on its own, the others are stopped and
``up`` exits non-zero naming it and its log file.

If ``up`` dies without stopping them (SIGKILL), each child gets SIGTERM from the kernel
(:mod:`quayside.stack.parent_death`), and the next ``up`` ends whatever is left from the
record kept in the data directory (:mod:`quayside.stack.stale_children`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

import httpx

from quayside.errors import QuaysideError
from quayside.stack.parent_death import preexec
from quayside.stack.processes import ProcessSpec
from quayside.stack.stale_children import Child, write_children


class StackError(QuaysideError):
    """The platform could not start or one of its processes died."""


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """One ``quayside up`` per data directory."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / "up.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StackError(
            f"another `quayside up` is already running on {home}",
            hint="stop it first (Ctrl-C in its terminal) or set QUAYSIDE_HOME elsewhere",
        ) from None
    try:
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def up_running(home: Path) -> bool:
    """Whether a ``quayside up`` holds ``home`` now (:func:`home_lock`), without taking it."""
    try:
        handle = (home / "up.lock").open("rb")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def quiet_when_gone(say: Callable[[str], None]) -> Callable[[str], None]:
    """``say`` that drops its line when the terminal is gone (a hung-up terminal answers
    writes with EIO): a message must never keep ``up`` from stopping its children."""

    def tolerant(line: str) -> None:
        with contextlib.suppress(OSError):
            say(line)

    return tolerant


class Supervisor:
    """Starts ProcessSpecs with a shared environment; ``stop()`` ends them all.

    Args:
        env: every child's environment.
        cwd: every child's working directory.
        record: where the children are recorded while they run
            (:func:`quayside.stack.stale_children.pid_file`), or None.
    """

    def __init__(self, env: Mapping[str, str], cwd: Path, record: Path | None = None) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.record = record
        self.children: list[tuple[ProcessSpec, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = spec.log_file.open("ab")
        proc = subprocess.Popen(
            spec.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec(),  # SIGTERM when `up` dies, however it dies
        )
        self.children.append((spec, proc, log))
        if self.record is not None:
            write_children(
                self.record,
                [Child(s.name, p.pid, tuple(s.argv)) for s, p, _ in self.children],
            )
        return proc

    def wait_healthy(
        self, spec: ProcessSpec, proc: subprocess.Popen[bytes], timeout: float
    ) -> None:
        """Wait until ``spec.health_url`` answers 200, or fail if the process exits."""
        if spec.health_url is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(
                    f"{spec.name} exited with code {proc.returncode} while starting",
                    hint=f"see {spec.log_file}",
                )
            try:
                if httpx.get(spec.health_url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise StackError(
            f"{spec.name} did not answer {spec.health_url} within {timeout:.0f}s",
            hint=f"see {spec.log_file}",
        )

    def watch(self, should_stop: Callable[[], bool], interval: float = 0.5) -> None:
        """Block until ``should_stop()`` or a child exits (then raise StackError)."""
        while not should_stop():
            for spec, proc, _ in self.children:
                if proc.poll() is not None:
                    raise StackError(
                        f"{spec.name} exited unexpectedly with code {proc.returncode}",
                        hint=f"see {spec.log_file}",
                    )
            time.sleep(interval)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every child's process group (newest first), SIGKILL after ``grace``."""
        for _, proc, _ in reversed(self.children):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc, _ in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            # the leader is gone; make sure nothing it started lingers in its group
            _signal_group(proc, signal.SIGKILL)
        for _, _, log in self.children:
            log.close()
        self.children.clear()
        if self.record is not None:
            with contextlib.suppress(FileNotFoundError):
                self.record.unlink()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
