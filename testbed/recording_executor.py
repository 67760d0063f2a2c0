"""An executor that touches no host: it records every command it is given, in order, in a
journal shared by all the hosts of a test, and answers from a script. Orchestration-order
tests use it (DESIGN.md, Testing): which commands a release step sends, to which host, in
which order, and what it does when one of them fails - without a server or a host.

Example::

    journal = Journal()
    web1 = RecordingExecutor("web-1", journal, answer=lambda argv: "" if argv[0] != "cat" else "v1")
    check_something(web1)
    assert journal.programs("web-1") == ["cat", "sh"]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quayside.errors import CommandFailed
from quayside.executors.base import CommandResult, OutputCallback, RemoteShell

Answer = Callable[[tuple[str, ...]], "str | CommandResult | BaseException"]
"""What a command returns: its stdout, a whole result (exit code, stderr), or an exception to
raise (a connection that dies, a timeout)."""


@dataclass(frozen=True)
class Call:
    """One recorded call: the host, what was asked (``run``, ``put_file``, ``put_bytes``) and
    its argv (for a put: the remote path), the stdin it carried, and the env it named."""

    host: str
    kind: str
    argv: tuple[str, ...]
    stdin: bytes | None = None
    env: Mapping[str, str] | None = None


@dataclass
class Journal:
    """Every call of every recording executor of a test, in the order they happened."""

    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def of(self, host: str) -> list[Call]:
        """The calls to ``host``, in order."""
        return [c for c in self.calls if c.host == host]

    def programs(self, host: str) -> list[str]:
        """The program (argv[0]) of each ``run`` on ``host``, in order."""
        return [c.argv[0] for c in self.of(host) if c.kind == "run" and c.argv]


class RecordingExecutor:
    """An :class:`quayside.executors.base.Executor` that records instead of running.

    Args:
        name: the host name.
        journal: where calls are recorded (share one between hosts to see the interleaving).
        answer: maps an argv to its stdout, a :class:`CommandResult`, or an exception; default
            every command succeeds with no output. A result with a non-zero exit raises
            ``CommandFailed`` when the caller asked ``check=True``, as a real executor does.
        address: the host's address (health-check URLs).
    """

    def __init__(
        self,
        name: str,
        journal: Journal,
        answer: Answer | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.address = address
        self.journal = journal
        self.answer: Answer = answer or (lambda argv: "")
        self.closed = False

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
        args = tuple(argv)
        data = stdin.read_bytes() if isinstance(stdin, Path) else stdin
        self.journal.add(Call(self.name, "run", args, data, dict(env) if env else None))
        started = time.monotonic()
        reply = self.answer(args)
        if isinstance(reply, BaseException):
            raise reply
        result = (
            reply
            if isinstance(reply, CommandResult)
            else CommandResult(self.name, args, 0, reply, "", time.monotonic() - started)
        )
        if on_output is not None:
            for line in result.stdout.splitlines():
                on_output("stdout", line)
        if check and not result.ok:
            raise CommandFailed(
                self.name,
                f"command failed: {' '.join(args)}",
                command=args,
                exit_code=result.exit_code,
                stderr=result.stderr,
            )
        return result

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        self.journal.add(Call(self.name, "put_file", (remote,), local.read_bytes()))

    def put_bytes(self, data: bytes, remote: str, *, mode: int | None = None) -> None:
        self.journal.add(Call(self.name, "put_bytes", (remote,), data))

    def remote_shell(self) -> RemoteShell | None:
        return None

    def close(self) -> None:
        self.closed = True
