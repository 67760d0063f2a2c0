"""Scratch space left behind by a crash: build directories, restore caches and half-written
store files that their owner would have removed. Anything older than a threshold is swept
the next time the same kind of scratch is made."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
import time
import weakref
from fnmatch import fnmatch
from pathlib import Path

from quayside.executors import local_processes

#: a build or restore directory this old is no run's any more (deploys last minutes)
STALE_AFTER_S = 24 * 3600
#: a temporary file or directory of one store write or restore this old was abandoned
TEMP_STALE_AFTER_S = 3600
#: how long a process that ends waits for its background removals to finish
EXIT_WAIT_S = 60.0


def sweep_stale(
    directory: Path, *, pattern: str = "*", older_than_s: float = STALE_AFTER_S
) -> list[Path]:
    """Delete the entries of ``directory`` matching ``pattern`` whose modification time is
    older than ``older_than_s`` seconds (directories recursively, symlinks themselves).
    Best effort: an entry that cannot be removed is left; a missing directory is fine.

    Returns:
        The entries removed.
    """
    cutoff = time.time() - older_than_s
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not fnmatch(entry.name, pattern):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


class BackgroundRemoval:
    """Deletes directories in the background: an ``rm -rf`` process, instead of 5,000 unlinks
    on the run's critical path or a Python loop taking the interpreter lock from its threads;
    :meth:`join` waits for it where that matters (tests).

    The process comes from the local process runner, so it dies with the run's process like
    every other (:mod:`quayside.executors.local_processes`): a run that ends normally waits
    for its removals at exit (at most ``EXIT_WAIT_S``); a run killed outright leaves the rest,
    which :func:`sweep_stale` removes later. Best effort, as that sweep."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: set[Path] = set()
        self._processes: list[subprocess.Popen[bytes]] = []

    def remove(self, *paths: Path) -> None:
        """Start deleting ``paths`` (each at most once; missing ones are fine)."""
        with self._lock:
            todo = [p for p in paths if p not in self._started]
            self._started.update(todo)
            if not todo:
                return
            try:
                process = local_processes.start(
                    ["rm", "-rf", "--", *map(str, todo)],
                    stdin=local_processes.DEVNULL,
                    stdout=local_processes.DEVNULL,
                    stderr=local_processes.DEVNULL,
                )
            except OSError:  # no rm: delete here instead
                for path in todo:
                    shutil.rmtree(path, ignore_errors=True)
                return
            self._processes.append(process)
            _UNFINISHED.add(self)

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for every removal started so far."""
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                continue


#: Removals that may still run when this process exits (weakly held: a finished or forgotten
#: one costs nothing).
_UNFINISHED: weakref.WeakSet[BackgroundRemoval] = weakref.WeakSet()


def _finish_at_exit() -> None:
    """Let started removals finish before the process (and with it every ``rm``) exits."""
    deadline = time.monotonic() + EXIT_WAIT_S
    for removal in list(_UNFINISHED):
        removal.join(max(0.0, deadline - time.monotonic()))


atexit.register(_finish_at_exit)
