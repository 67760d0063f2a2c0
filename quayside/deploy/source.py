"""The release payload: sync the mirror, resolve the ref, export the tree, run the build.

Operator commands (build steps, hooks) are an argv list, run as is, or a string, run with
``["sh", "-c", string]``; the release facts reach them as environment variables only. Build
steps run through the local process runner (:mod:`quayside.executors.local_processes`), each in
a session of its own that a timeout kills whole, and die with the run.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from quayside.deploy.errors import BuildError
from quayside.errors import InputError, NotFoundError, tail
from quayside.executors import local_processes
from quayside.source.mirror import GitMirror

OutputLine = Callable[[str], None]


def command_argv(command: Sequence[str] | str) -> list[str]:
    """argv for an operator command: a list as is, a string through ``sh -c``.

    Raises:
        InputError: an empty command.
    """
    if isinstance(command, str):
        if not command.strip():
            raise InputError("empty command in quayside.yaml")
        return ["sh", "-c", command]
    argv = list(command)
    if not argv or not argv[0]:
        raise InputError("empty command in quayside.yaml")
    return argv


def release_env(
    *,
    app: str,
    env: str,
    release_id: str,
    commit_sha: str,
    ref: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The QUAYSIDE_* variables every build step, hook and health command sees."""
    out = dict(extra or {})
    out.update(
        QUAYSIDE_APP=app,
        QUAYSIDE_ENV=env,
        QUAYSIDE_RELEASE=release_id,
        QUAYSIDE_COMMIT=commit_sha,
        QUAYSIDE_REF=ref,
    )
    return out


@dataclass(frozen=True)
class Source:
    """A resolved ref in a synced mirror."""

    mirror: GitMirror
    ref: str
    commit_sha: str


def resolve_source(mirrors_dir: Path, repo: str | None, ref: str, *, app: str) -> Source:
    """Sync the app's mirror (clone or fetch) and resolve ``ref`` to a commit.

    Raises:
        InputError: ``ref`` is not a safe ref name (checked before git runs).
        NotFoundError: the app has no repo, or the ref does not exist.
        CommandFailed / CommandTimeout: git could not reach or read the repository.
    """
    if not repo:
        raise NotFoundError(
            f"app '{app}' has no repo in quayside.yaml", hint=f"set apps.{app}.repo"
        )
    from quayside.commands.git import check_ref

    check_ref(ref)  # refuse before any git command runs
    mirror = GitMirror(mirrors_dir, repo)
    mirror.sync()
    return Source(mirror, ref, mirror.resolve(ref))


def run_build(
    commands: Sequence[Sequence[str] | str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    timeout_s: float,
    on_line: OutputLine | None = None,
) -> None:
    """Run the build ``commands`` one after another in ``cwd``, streaming output lines.

    Args:
        commands: operator commands (argv lists, or strings run with ``sh -c``).
        cwd: the build directory (the exported tree); the result is what is deployed.
        env: extra environment variables (the release facts).
        timeout_s: limit for all commands together.
        on_line: called with every output line (stdout and stderr merged).

    Raises:
        BuildError: a command exited non-zero, could not start, or ran past the timeout.
    """
    deadline = time.monotonic() + timeout_s
    full_env = {**os.environ, **env}
    for i, command in enumerate(commands):
        argv = command_argv(command)
        shown = command if isinstance(command, str) else " ".join(argv)
        lines: list[str] = []

        def emit(line: str, lines: list[str] = lines) -> None:
            lines.append(line)
            del lines[:-50]
            if on_line is not None:
                on_line(line)

        try:
            proc = local_processes.start(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=local_processes.DEVNULL,
                stdout=local_processes.PIPE,
                stderr=local_processes.STDOUT,
                new_session=True,
            )
        except OSError as e:
            raise BuildError(f"build step {i + 1} ({shown}) could not start: {e}") from e
        assert proc.stdout is not None
        stream = proc.stdout

        def pump(stream: IO[bytes] = stream) -> None:
            for raw in iter(stream.readline, b""):
                emit(raw.decode(errors="replace").rstrip("\n"))

        reader = threading.Thread(target=pump, name="quayside-build-output", daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            local_processes.kill_group(proc)
            reader.join(5)
            raise BuildError(
                f"build step {i + 1} ({shown}) ran past the build timeout of {timeout_s:g}s"
                + (f": {tail(chr(10).join(lines))}" if lines else "")
            ) from None
        reader.join(5)
        stream.close()
        if code != 0:
            raise BuildError(
                f"build step {i + 1} ({shown}) failed (exit {code})"
                + (f": {tail(chr(10).join(lines))}" if lines else "")
            )
