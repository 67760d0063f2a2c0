"""Waiting for a rollback's background prune on the testbed's sshd hosts.

A rollback answers as soon as the host serves the release; rollback_switch.sh prunes afterwards
in a background subshell (a fork of the script's ``sh``, so with the same command line:
``sh -c <script> quayside ROOT RELEASE_ID KEEP ...``). The sshd hosts run on this machine, so
the end of that subshell is visible in /proc: once no process runs the script for a deploy
root, its prune has finished and the release directories left are final - a test can assert the
exact set, including that nothing more is deleted, instead of polling until it looks right.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

#: the rollback switch script's own header line (quayside/deploy/rollback_switch.sh)
SCRIPT_MARK = b"quayside rollback switch script"


def switch_script_running(root: Path) -> bool:
    """Whether a process on this machine runs the rollback switch script for ``root``."""
    root_arg = b"\0" + str(root).encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if SCRIPT_MARK in cmdline and root_arg in cmdline:
            return True
    return False


def wait_for_rollback_prune(roots: Iterable[Path], timeout_s: float = 60) -> None:
    """Return once no rollback switch script (nor its background prune) runs for any of
    ``roots``; fail after ``timeout_s``. Call it after the rollback returned: the background
    subshell exists by then (it is forked before the script answers)."""
    pending = list(roots)
    deadline = time.monotonic() + timeout_s
    while pending:
        pending = [root for root in pending if switch_script_running(root)]
        assert time.monotonic() < deadline, f"rollback prune still running for {pending}"
        if pending:
            time.sleep(0.05)
