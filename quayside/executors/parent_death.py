"""Processes that end with the process that started them (Linux ``PR_SET_PDEATHSIG``).

``quayside up`` starts the Prefect server, the worker and the gateway in their own sessions
(stopping one stops what it started). If ``up`` itself is killed outright (SIGKILL, the OOM
killer), nothing would stop them, and the next ``up`` would find its ports taken. So every
process ``up`` starts asks the kernel for SIGTERM when its parent dies (:func:`preexec`, as
``subprocess.Popen(preexec_fn=...)``), and so do the processes under it that Quayside starts
itself: the fork server under the worker, its per-run handlers and flow runs.

The kernel sends the signal when the *thread* that forked the child ends: only use it for
children forked by a thread that lives as long as its process (the main thread here, or the
spawner thread of :mod:`quayside.executors.local_processes`, which starts every other process
through ``setpriv --pdeathsig`` and falls back to :func:`preexec`). Elsewhere than Linux these
functions do nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# resolved once, in the parent: after a fork the child only calls it
_PRCTL = _load_prctl()


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Ask for ``sig`` when this process's parent (``parent_pid``) dies; if it already died
    (between the fork and this call), send ``sig`` to this process now."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def preexec(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when the calling
    process dies (``start_new_session`` still applies: Python calls ``setsid`` first)."""
    parent = os.getpid()

    def in_child() -> None:
        die_with_parent(parent, sig)

    return in_child
