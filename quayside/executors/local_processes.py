"""The one place Quayside starts processes on this machine, and why each dies with Quayside.

Everything a release runs as a local program goes through here: git for the mirrors, the
build steps, ``rm -rf`` of scratch space, the OpenSSH client (``ssh`` for bulk transfers and
persisted connections), :class:`~quayside.executors.local.LocalExecutor`'s commands, and tar and
rsync for the deploy engine. Outside releases, the platform's own process supervision starts
its long-lived services directly (``quayside up``'s supervisor, the worker starting its fork
server, the reconcile sweep: each sets its own parent-death handling, in
:mod:`quayside.stack.parent_death`), and ``quayside config edit`` runs the user's editor in the
foreground. :func:`start` is ``subprocess.Popen`` for a process read or fed through pipes;
:func:`run` is ``subprocess.run(argv, capture_output=True, text=True)`` with a timeout that
kills.

Every child asks the kernel for a signal when its parent dies (Linux ``PR_SET_PDEATHSIG``;
SIGKILL unless the caller names a gentler one): a flow run killed outright (SIGKILL, the OOM
killer) takes its tar producers, ``ssh`` clients and rsyncs with it, so nothing keeps streaming
to a host, and a remote command reading its standard input sees end-of-file.

Two things shape how that is done:

* The kernel sends the signal when the *thread* that forked the child ends, not the process.
  Quayside starts processes from short-lived threads (the per-host fan-out, Prefect's task
  threads, thread pools): a child forked there would be killed when its thread finished, while
  it is still needed (an ``rm -rf`` in the background, a producer handed to another thread).
  So a child is only ever forked by a thread that lives as long as the process: the main
  thread directly, every other thread through one dedicated *spawner thread* (a daemon thread,
  started on first use and again after ``fork``), which forks and hands the ``Popen`` back.
  The caller then owns the process as with ``subprocess`` (pipes, wait, kill), from any thread.
  The spawner only forks, so it serialises nothing but the fork itself (about 3 ms here).
* ``subprocess``'s ``preexec_fn`` (a Python call in the child) makes Python fork the whole
  interpreter instead of ``vfork``: 16 ms per process here against 3 ms, 0.3 s for 20 hosts
  through one spawner. So the request is made by ``setpriv --pdeathsig SIG`` (util-linux), which
  sets it and ``exec``\\ s the program: the signal setting survives ``exec``. Where ``setpriv``
  is missing or too old, :func:`quayside.executors.parent_death.preexec` does it (slower, same
  effect). Elsewhere than Linux nothing is requested.

The signal reaches only the direct child. A child started in a session of its own
(``new_session``: build steps, :class:`~quayside.executors.local.LocalExecutor`'s commands, so
``ssh`` clients and a local host's stage script) also has its whole process group killed when
this process is gone, by this process's :mod:`~quayside.executors.group_guard`.

Not covered: a parent killed in the instant (about a millisecond) between the fork and
``setpriv``'s request, which leaves an orphan; and, on purpose, ``ssh``'s own
``ControlPersist`` master, which leaves the client's session: it is a connection cache shared
with later runs, which ``quayside up`` closes on its way out, and its sessions end when their
client dies.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO, TypeVar

from quayside.executors.group_guard import GroupGuard
from quayside.executors.parent_death import preexec

T = TypeVar("T")

#: What a child's standard stream can be: ``subprocess.PIPE``/``DEVNULL``/``STDOUT``, a file
#: descriptor, an open binary file, or None (inherit this process's).
Stream = int | IO[bytes] | None

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

SETPRIV = "setpriv"


class _Spawner:
    """Forks on behalf of threads that may end before their children (see the module
    docstring): the main thread forks itself, every other thread through one daemon thread
    that lives as long as the process."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def call(self, fork: Callable[[], T]) -> T:
        """``fork()`` on a thread that lives as long as this process; its result or error."""
        current = threading.current_thread()
        if current is threading.main_thread() or current is self._thread:
            return fork()
        future: Future[T] = Future()
        self._requests.put((fork, future))  # type: ignore[arg-type]
        self._ensure_thread()
        return future.result()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="quayside-process-spawner", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            fork, future = self._requests.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fork())
            except BaseException as e:  # handed to the caller, who raises it
                future.set_exception(e)

    def after_fork_in_child(self) -> None:
        """A forked child has no spawner thread (threads do not survive ``fork``)."""
        self._reset()


_SPAWNER = _Spawner()
_GUARD = GroupGuard()
#: every process :func:`start` started and its owner still holds, with whether it leads a
#: process group of its own (:func:`kill_started`)
_STARTED: weakref.WeakKeyDictionary[subprocess.Popen[bytes], bool] = weakref.WeakKeyDictionary()
_STARTED_LOCK = threading.Lock()

_setpriv_checked = False
_setpriv: str | None = None
_setpriv_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _setpriv_lock, _STARTED_LOCK
    _SPAWNER.after_fork_in_child()
    _GUARD.after_fork_in_child()
    _STARTED.clear()  # the parent's children are not this process's
    _STARTED_LOCK = threading.Lock()
    _setpriv_lock = threading.Lock()  # another thread may have held it during the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _setpriv_path() -> str | None:
    """``setpriv`` if it is here and takes ``--pdeathsig`` (util-linux 2.33+), checked once."""
    global _setpriv_checked, _setpriv
    with _setpriv_lock:
        if not _setpriv_checked:
            _setpriv_checked = True
            found = shutil.which(SETPRIV) if sys.platform.startswith("linux") else None
            if found is not None:
                try:
                    probe = subprocess.run(
                        [found, "--pdeathsig", "KILL", "--", "true"],
                        capture_output=True,
                        timeout=10,
                        check=False,
                    )
                    _setpriv = found if probe.returncode == 0 else None
                except (OSError, subprocess.TimeoutExpired):
                    _setpriv = None
        return _setpriv


def _check_program(argv0: str, env: Mapping[str, str] | None, cwd: str | Path | None) -> None:
    """Raise what ``Popen`` would for a program that cannot run (``setpriv`` would otherwise
    start and only then fail): FileNotFoundError, PermissionError."""
    if "/" in argv0:
        path = Path(argv0)
        if not path.is_absolute() and cwd is not None:
            path = Path(cwd) / path
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv0)
        if path.is_dir() or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), argv0)
        return
    search = os.pathsep.join(os.get_exec_path(dict(env) if env is not None else None))
    if shutil.which(argv0, path=search) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv0)


def start(
    argv: Sequence[str],
    *,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
    umask: int = -1,
    death_signal: signal.Signals = signal.SIGKILL,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (no shell) as ``subprocess.Popen`` would, dying with this process.

    Args:
        argv: The program and its arguments.
        stdin, stdout, stderr: ``PIPE``, ``DEVNULL``, ``STDOUT`` (stderr), a descriptor, an
            open binary file, or None to inherit.
        cwd: Working directory.
        env: The complete environment (None: this process's).
        new_session: Start it in a session (and process group) of its own, so
            :func:`kill_group` reaches what it starts; that whole group is killed when this
            process is gone (:mod:`quayside.executors.group_guard`).
        umask: The child's umask (-1: this process's).
        death_signal: What the child gets when this process dies; SIGTERM for a program
            that must clean up (git removes its lock files).

    Returns:
        The running process; ``args`` is ``argv`` (the ``setpriv`` wrapper is not shown).

    Raises:
        FileNotFoundError, PermissionError: The program cannot be run.
        OSError: The process could not be started.
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ValueError("empty command")
    _check_program(args[0], env, cwd)
    wrapper = _setpriv_path()
    command = args
    preexec_fn = None
    if wrapper is not None:
        command = [wrapper, "--pdeathsig", death_signal.name.removeprefix("SIG"), "--", *args]
    elif sys.platform.startswith("linux"):
        preexec_fn = preexec(death_signal)

    def fork() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=env,
            start_new_session=new_session,
            umask=umask,
            preexec_fn=preexec_fn,
        )

    process = _SPAWNER.call(fork)
    process.args = args
    if new_session and sys.platform.startswith("linux"):
        _GUARD.watch(process.pid)
    with _STARTED_LOCK:
        _STARTED[process] = new_session
    return process


def kill_started() -> int:
    """SIGKILL every process :func:`start` started that still runs (its whole process group
    when it has one), as if this process had died: what a stopping release run does before
    it reads the hosts (:mod:`quayside.release.stopping`), so that no ``ssh`` client, tar
    producer or rsync it started keeps talking to a host. Their owners see them killed.

    Returns:
        How many were still running.
    """
    with _STARTED_LOCK:
        started = list(_STARTED.items())
    killed = 0
    for process, group in started:
        if process.poll() is not None:  # ended (and reaped): its pid may be another's now
            continue
        try:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    stdin: Stream = DEVNULL,
    timeout: float | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
    umask: int = -1,
    death_signal: signal.Signals = signal.SIGKILL,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion and capture its output as text (invalid UTF-8 replaced):
    ``subprocess.run(argv, capture_output=True, text=True, errors="replace")``, dying with
    this process.

    Args:
        argv: The program and its arguments.
        input: Bytes for its standard input (else ``stdin`` is used: /dev/null by default).
        stdin: Its standard input when ``input`` is None.
        timeout: Seconds before it is killed (its whole process group with ``new_session``).
        cwd, env, new_session, umask, death_signal: As for :func:`start`.

    Returns:
        The exit status (``-N`` for signal N) and the captured stdout and stderr.

    Raises:
        subprocess.TimeoutExpired: Still running after ``timeout`` seconds (it was killed;
            ``stderr`` holds what it wrote, as bytes).
        FileNotFoundError, PermissionError: The program cannot be run.
    """
    process = start(
        argv,
        stdin=PIPE if input is not None else stdin,
        stdout=PIPE,
        stderr=PIPE,
        cwd=cwd,
        env=env,
        new_session=new_session,
        umask=umask,
        death_signal=death_signal,
    )
    try:
        raw_out, raw_err = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        stop(process, group=new_session)
        try:
            _, late_err = process.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            late_err = b""
        raise subprocess.TimeoutExpired(
            process.args, e.timeout, output=e.output, stderr=late_err or e.stderr
        ) from None
    except BrokenPipeError:  # it exited before reading all of ``input``
        raw_out, raw_err = process.communicate()
    finally:
        if process.poll() is None:  # interrupted: never leave it running
            stop(process, group=new_session)
    return subprocess.CompletedProcess(
        process.args,
        process.returncode,
        raw_out.decode("utf-8", errors="replace"),
        raw_err.decode("utf-8", errors="replace"),
    )


def stop(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGKILL ``process`` (its whole process group with ``group``: it was started with
    ``new_session``) and reap it."""
    try:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``process`` (started with ``new_session``) and reap it."""
    stop(process, group=True)
