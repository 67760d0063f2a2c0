"""Round trips to one host, counted: what reports and benchmarks say a deploy cost."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from quayside.executors.base import CommandResult, Executor
from quayside.executors.quoting import remote_command
from quayside.release.host_report import HostReport

#: a stage round trip may carry a large payload
STAGE_TIMEOUT_S = 1800.0

LogLine = Callable[[str], None]


class RoundTrips:
    """Runs commands through one host's executor, counting the round trips and the bytes of
    their command lines (a command line is sent to the host too)."""

    def __init__(self, executor: Executor, host: str, on_line: LogLine | None = None) -> None:
        self.executor = executor
        self.host = host
        self.on_line = on_line
        self.trips = 0
        self.command_bytes = 0
        #: the stdin bytes of the last command sent (what a connection lost during it was
        #: carrying)
        self.in_flight = 0
        self.started = time.monotonic()

    def count(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> None:
        """One more round trip, carrying ``argv``."""
        self.trips += 1
        self.command_bytes += len(remote_command(argv, env=env, cwd=cwd).encode())

    def report(self, base: HostReport, **changes: object) -> HostReport:
        """``base`` with ``changes``, its duration since this host's work started, the round
        trips and the command lines' bytes (on top of what ``base`` counts as sent)."""
        out = replace(base, **changes)  # type: ignore[arg-type]
        return replace(
            out,
            duration_s=time.monotonic() - self.started,
            round_trips=self.trips,
            bytes_sent=out.bytes_sent + self.command_bytes,
        )

    def result(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = STAGE_TIMEOUT_S,
        check: bool = True,
        stream: bool = False,
        stdin_bytes: int | None = None,
    ) -> CommandResult:
        """Run ``argv`` (one round trip); with ``stream``, its output lines go to ``on_line``
        as ``<host> <stream>: <line>``. ``stdin_bytes``: the size of a ``stdin`` file that
        cannot be measured (a FIFO)."""
        self.count(argv, env=env, cwd=cwd)
        if stdin_bytes is not None:
            self.in_flight = stdin_bytes
        elif isinstance(stdin, bytes):
            self.in_flight = len(stdin)
        else:
            self.in_flight = stdin.stat().st_size if isinstance(stdin, Path) else 0
        callback = None
        if stream and self.on_line is not None:
            out = self.on_line

            def callback(kind: str, line: str) -> None:
                out(f"{self.host} {kind}: {line}")

        return self.executor.run(
            argv, stdin=stdin, env=env, cwd=cwd, timeout=timeout, check=check, on_output=callback
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = STAGE_TIMEOUT_S,
        stream: bool = False,
        stdin_bytes: int | None = None,
    ) -> str:
        """Run ``argv`` (one round trip, raising for a non-zero exit); returns its stdout."""
        return self.result(
            argv,
            stdin=stdin,
            env=env,
            cwd=cwd,
            timeout=timeout,
            stream=stream,
            stdin_bytes=stdin_bytes,
        ).stdout
