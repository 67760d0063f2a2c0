"""Kills the whole process groups this process started, once it is gone (however it died).

``PR_SET_PDEATHSIG`` reaches only a direct child: a command started in a session of its own
(a build step's ``sh -c``, a stage script on a ``transport: local`` host, an ``ssh`` client)
dies with Quayside, but what *it* started would live on. So each process that starts such a
session also starts one guard: a small Python process reading a pipe whose only writer is this
process. The group id of every new session goes down the pipe; when the pipe reads end-of-file -
this process exited or was killed, the kernel closed its end - the guard SIGKILLs every group
still alive and exits. It forgets a group once the group is empty (checked every second), so a
recycled group id is never signalled.

The write end is not inherited: Python's pipes are close-on-exec, and a forked child (the fork
server's runs) closes it and starts a guard of its own on first use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

#: The guard itself: read group ids until end-of-file, then kill the groups still alive.
GUARD_PROGRAM = r"""
import os, select, signal
groups, pending = set(), b""
while True:
    ready, _, _ = select.select([0], [], [], 1.0)
    if ready:
        data = os.read(0, 4096)
        if not data:
            break
        *lines, pending = (pending + data).split(b"\n")
        groups.update(int(line) for line in lines if line.strip())
    for group in list(groups):
        try:
            os.killpg(group, 0)
        except OSError:
            groups.discard(group)
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


class GroupGuard:
    """This process's guard, started on first use."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._write_fd: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def watch(self, group: int) -> None:
        """Kill process group ``group`` when this process is gone (best effort: without a
        guard, only the group's leader dies with this process)."""
        line = f"{group}\n".encode()
        with self._lock:
            if self._write_fd is None and not self._start():
                return
            assert self._write_fd is not None
            try:
                os.write(self._write_fd, line)
            except OSError:  # the guard died: start another
                self._close()
                if self._start():
                    assert self._write_fd is not None
                    try:
                        os.write(self._write_fd, line)
                    except OSError:
                        self._close()

    def _start(self) -> bool:
        read_fd, write_fd = os.pipe()
        try:
            # not through the process runner: a parent-death signal would kill the guard
            # before it could act; it ends by itself at end-of-file
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", GUARD_PROGRAM],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a signal to this process's group leaves it alone
            )
        except OSError:
            os.close(write_fd)
            return False
        finally:
            os.close(read_fd)
        self._write_fd = write_fd
        return True

    def _close(self) -> None:
        if self._write_fd is not None:
            try:
                os.close(self._write_fd)
            except OSError:
                pass
        self._write_fd = None

    def after_fork_in_child(self) -> None:
        """A forked child must not keep its parent's guard waiting: close the inherited
        write end; the child starts its own guard when it needs one."""
        if self._write_fd is not None:
            try:
                os.close(self._write_fd)
            except OSError:
                pass
        self._reset()
