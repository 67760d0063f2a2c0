"""Run argv commands on this machine (the Quayside worker itself), through the local process
runner (:mod:`quayside.executors.local_processes`): each dies with the process that ran it."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from quayside.errors import CommandFailed, CommandTimeout
from quayside.executors import local_processes
from quayside.executors.base import CommandResult, OutputCallback, RemoteShell
from quayside.executors.local_processes import kill_group

#: How much of a command line an error message shows.
COMMAND_DISPLAY_LIMIT = 200

#: Mode of a file written by put_file/put_bytes when no mode is given and none exists yet.
DEFAULT_FILE_MODE = 0o644


#: The variables a command on a local host inherits: what a login session has (as over SSH),
#: never the platform's own (its API auth string, ledger URL, Prefect settings).
LOGIN_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR")


def login_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The login variables of ``environ`` (PATH defaulted): the base environment of a
    command on a ``transport: local`` host."""
    out = {key: environ[key] for key in LOGIN_VARIABLES if key in environ}
    out.setdefault("PATH", os.defpath)
    return out


def display_command(argv: Sequence[str]) -> str:
    """``argv`` as one shell-quoted line, shortened for error messages."""
    text = shlex.join(argv)
    if len(text) > COMMAND_DISPLAY_LIMIT:
        text = text[: COMMAND_DISPLAY_LIMIT - 3] + "..."
    return text


class LineCollector:
    """Collects one output stream and hands each complete line to the output callback.

    Bytes are split on ``\\n`` before decoding, so a multi-byte character is never cut; the
    callback receives the line without its newline. Calls from the stdout and stderr readers
    are serialized by ``lock`` so a callback never runs twice at once.
    """

    def __init__(self, stream: str, on_output: OutputCallback | None, lock: threading.Lock) -> None:
        self.stream = stream
        self._on_output = on_output
        self._lock = lock
        self._chunks: list[bytes] = []
        self._pending = b""

    def feed(self, data: bytes) -> None:
        """Add a chunk of raw output; complete lines go to the callback at once."""
        self._chunks.append(data)
        if self._on_output is None:
            return
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._emit(line)

    def finish(self) -> None:
        """End of stream: an unterminated last line still reaches the callback."""
        if self._on_output is not None and self._pending:
            self._emit(self._pending)
        self._pending = b""

    def text(self) -> str:
        """Everything collected so far, decoded (invalid UTF-8 replaced)."""
        return b"".join(self._chunks).decode("utf-8", errors="replace")

    def _emit(self, raw: bytes) -> None:
        assert self._on_output is not None
        line = raw.decode("utf-8", errors="replace").removesuffix("\r")
        with self._lock:
            self._on_output(self.stream, line)


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """Start a daemon thread running ``target``."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class LocalExecutor:
    """Runs commands on the local machine with :mod:`subprocess` (never through a shell).

    Each command runs in its own process group so a timeout kills everything it started.

    Args:
        name: The host name used in results and error messages.
        address: The address this host is reached at (health-check URLs' ``{address}``).
        base_env: The environment every command starts from (``env`` is added to it); by
            default this process's own. A ``transport: local`` host gets
            :func:`login_env`, as an SSH session would.
    """

    def __init__(
        self,
        name: str = "local",
        *,
        address: str = "127.0.0.1",
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self._base_env = dict(base_env) if base_env is not None else None

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        stdin: bytes | Path | None = None,
        cwd: str | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run ``argv`` and wait for it, streaming its output line by line.

        Args:
            argv: The program and its arguments; passed to the OS as is, no shell involved.
            timeout: Seconds before the command's whole process group is killed.
            check: Raise ``CommandFailed`` when the exit code is not zero.
            env: Variables added to (or overriding) this process's environment.
            stdin: Bytes written to the command's standard input (closed afterwards), or a
                file that becomes its standard input.
            cwd: Working directory for the command.
            on_output: Called with ``(stream, line)`` for every line as it arrives.

        Returns:
            The exit code and the complete stdout and stderr.

        Raises:
            CommandFailed: The command exited non-zero (``check``) or could not be started.
            CommandTimeout: The command ran longer than ``timeout`` seconds.
        """
        args = list(argv)
        if not args:
            raise CommandFailed(self.name, "empty command")
        child_env = None
        if self._base_env is not None:
            child_env = {**self._base_env, **(env or {})}
        elif env:
            child_env = {**os.environ, **env}
        start = time.monotonic()
        with ExitStack() as files:
            source: Any = subprocess.DEVNULL
            if isinstance(stdin, Path):
                source = files.enter_context(open(stdin, "rb"))  # noqa: SIM115
            elif stdin is not None:
                source = subprocess.PIPE
            return self._run(args, timeout, check, child_env, stdin, source, cwd, on_output, start)

    def _run(
        self,
        args: list[str],
        timeout: float | None,
        check: bool,
        child_env: dict[str, str] | None,
        stdin: bytes | Path | None,
        source: Any,
        cwd: str | None,
        on_output: OutputCallback | None,
        start: float,
    ) -> CommandResult:
        try:
            proc = local_processes.start(
                args,
                stdin=source,
                stdout=local_processes.PIPE,
                stderr=local_processes.PIPE,
                env=child_env,
                cwd=cwd,
                new_session=True,
            )
        except OSError as e:
            raise CommandFailed(
                self.name,
                f"cannot start {display_command(args)}: {e.strerror or e}",
                command=args,
            ) from e

        if on_output is None:
            return self._collect(proc, args, timeout, check, stdin, start)
        lock = threading.Lock()
        out = LineCollector("stdout", on_output, lock)
        err = LineCollector("stderr", on_output, lock)
        assert proc.stdout is not None and proc.stderr is not None
        threads = [
            start_thread(lambda: pump(proc.stdout, out), "quayside-local-stdout"),
            start_thread(lambda: pump(proc.stderr, err), "quayside-local-stderr"),
        ]
        if isinstance(stdin, bytes):
            assert proc.stdin is not None
            pipe = proc.stdin
            threads.append(start_thread(lambda: feed_stdin(pipe, stdin), "quayside-local-stdin"))

        try:
            exit_code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            for thread in threads:
                thread.join(timeout=5)
            raise self._timed_out(args, timeout, err.text()) from None
        finally:
            if proc.poll() is None:  # interrupted (KeyboardInterrupt): don't leave it running
                kill_group(proc)
        for thread in threads:
            thread.join()
        return self._result(args, exit_code, out.text(), err.text(), start, check)

    def _timed_out(self, args: list[str], timeout: float | None, stderr: str) -> CommandTimeout:
        return CommandTimeout(
            self.name,
            f"command timed out after {timeout or 0:g}s: {display_command(args)}",
            command=args,
            stderr=stderr,
        )

    def _result(
        self, args: list[str], exit_code: int, stdout: str, stderr: str, start: float, check: bool
    ) -> CommandResult:
        """The result of a finished command (``CommandFailed`` for a failure with ``check``)."""
        result = CommandResult(
            host=self.name,
            argv=tuple(args),
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_s=time.monotonic() - start,
        )
        if check and exit_code != 0:
            raise CommandFailed(
                self.name,
                f"command failed: {display_command(args)}",
                command=args,
                exit_code=exit_code,
                stderr=stderr,
            )
        return result

    def _collect(
        self,
        proc: subprocess.Popen[bytes],
        args: list[str],
        timeout: float | None,
        check: bool,
        stdin: bytes | Path | None,
        start: float,
    ) -> CommandResult:
        """Nothing to stream: the output is collected by ``communicate`` in this thread (no
        reader threads per command: 20 hosts at once otherwise start 60 of them)."""
        data = stdin if isinstance(stdin, bytes) else None
        try:
            raw_out, raw_err = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            try:
                _, raw_err = proc.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                raw_err = b""
            stderr = (raw_err or b"").decode("utf-8", errors="replace")
            raise self._timed_out(args, timeout, stderr) from None
        except BrokenPipeError:  # a child that exits before reading its stdin
            raw_out, raw_err = proc.communicate()
        finally:
            if proc.poll() is None:  # interrupted (KeyboardInterrupt): don't leave it running
                kill_group(proc)
        out, err = (raw.decode("utf-8", errors="replace") for raw in (raw_out, raw_err))
        return self._result(args, proc.returncode, out, err, start, check)

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        """Copy ``local`` to the path ``remote`` atomically.

        Args:
            local: The file to copy.
            remote: Destination path; its directory must exist.
            mode: Permission bits; default: those of the file being replaced, else 0644.

        Raises:
            OSError: Reading ``local`` or writing ``remote`` failed.
        """
        self.put_bytes(Path(local).read_bytes(), remote, mode=mode)

    def put_bytes(self, data: bytes, remote: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``remote`` atomically: a temp file in the same directory, then
        :func:`os.replace`. Readers see the old content or the new, never a partial file.

        Args:
            data: The content.
            remote: Destination path; its directory must exist.
            mode: Permission bits; default: those of the file being replaced, else 0644.

        Raises:
            OSError: The directory is missing or not writable.
        """
        target = Path(remote)
        if mode is None:
            try:
                mode = stat.S_IMODE(target.stat().st_mode)
            except FileNotFoundError:
                mode = DEFAULT_FILE_MODE
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, mode)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def remote_shell(self) -> RemoteShell | None:
        """None: this machine is reached without a remote shell (rsync copies locally)."""
        return None

    def close(self) -> None:
        """Nothing to release; present for the Executor interface."""


def pump(pipe: IO[bytes] | None, collector: LineCollector) -> None:
    """Read ``pipe`` until EOF into ``collector``."""
    assert pipe is not None
    with pipe:
        fd = pipe.fileno()
        while chunk := os.read(fd, 65536):
            collector.feed(chunk)
    collector.finish()


def feed_stdin(pipe: IO[bytes], data: bytes) -> None:
    """Write ``data`` to a child's stdin and close it; a child that exits early is fine."""
    try:
        with pipe:
            pipe.write(data)
    except (BrokenPipeError, ValueError):
        pass
