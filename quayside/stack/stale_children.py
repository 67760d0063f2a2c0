"""Processes a crashed ``quayside up`` left behind, found and ended by the next one.

``up`` records what it starts in ``QUAYSIDE_HOME/run/up-children.json`` (name, pid, argv of
each child; each child leads its own process group) and removes the file when it stops. A
file still there when ``up`` starts (holding the data directory's lock, so no live ``up`` owns
it) means the previous one died without stopping its children. Every process still in one of
the recorded process groups whose environment has ``QUAYSIDE_HOME`` set to this data
directory is one of them -- the worker's fork server and flow runs too -- and is ended
(SIGTERM, then SIGKILL after a grace period). A process whose pid was reused by something
else is left alone: it is not in such a group with such an environment.

Linux ``/proc`` only; elsewhere nothing is found.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "up-children.json"


@dataclass(frozen=True)
class Child:
    """A process ``up`` started."""

    name: str
    pid: int
    argv: tuple[str, ...]


def pid_file(home: Path) -> Path:
    """``QUAYSIDE_HOME/run/up-children.json``."""
    return home / "run" / FILE_NAME


def write_children(path: Path, children: list[Child]) -> None:
    """Replace ``path`` (0600) with ``children`` and this process's pid."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {
        "up": os.getpid(),
        "children": [{"name": c.name, "pid": c.pid, "argv": list(c.argv)} for c in children],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
    os.replace(tmp, path)


def read_children(path: Path) -> list[Child]:
    """The children recorded in ``path`` (none when it is missing or unreadable)."""
    try:
        body = json.loads(path.read_text())
        return [
            Child(str(c["name"]), int(c["pid"]), tuple(str(a) for a in c["argv"]))
            for c in body["children"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _process_group(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[2])
    except (IndexError, ValueError):
        return None


def _has_home(pid: int, home: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"QUAYSIDE_HOME={home}".encode() in environ.split(b"\0")


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def stale_processes(home: Path, children: list[Child]) -> list[int]:
    """Pids of live processes in the process groups of ``children`` that run for ``home``
    (their environment says ``QUAYSIDE_HOME=home``); a recorded leader must also still run
    its recorded program (the worker's wrapper execs ``prefect worker`` with the same
    interpreter, so only the program is compared, not the arguments)."""
    groups = {c.pid: c for c in children}
    me = os.getpid()
    found = []
    try:
        entries = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    except OSError:
        return []
    for pid in entries:
        if pid == me:
            continue
        group = _process_group(pid)
        if group not in groups or not _has_home(pid, home):
            continue
        leader = groups[group]
        if pid == leader.pid and (_cmdline(pid) or ("",))[0] != leader.argv[0]:
            continue  # the pid was reused by another program
        found.append(pid)
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        text = state.read_text()
        return text[text.rfind(")") + 2 :].split()[0] != "Z"  # a zombie is gone
    return False


def end_processes(pids: list[int], grace_s: float = 5.0) -> None:
    """SIGTERM ``pids``, SIGKILL those still alive after ``grace_s``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def end_stale_children(home: Path, grace_s: float = 5.0) -> list[int]:
    """End what a previous ``up`` on ``home`` left running (see the module docstring) and
    remove its record; returns the pids ended. Call it holding the data directory's lock."""
    path = pid_file(home)
    children = read_children(path)
    pids = stale_processes(home, children) if children else []
    if pids:
        end_processes(pids, grace_s)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return pids
