"""The executor interface: the only code that touches a host implements this.

Commands arrive as argv lists built by ``quayside.commands``; an executor quotes them at its
own boundary (``shlex.join`` for SSH) and never receives a shell string built from user input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

#: Called with (stream, line) for each line of output as it arrives; stream is "stdout"/"stderr".
OutputCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class CommandResult:
    host: str
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class RemoteShell:
    """How a tool that takes a remote shell (``rsync -e``) reaches a host: the OpenSSH client
    command with the host's credentials and options (without the destination), and who to log
    in as where (``rsync_dest`` in :mod:`quayside.commands.rsync` joins them with a path)."""

    argv: tuple[str, ...]
    user: str
    address: str


@runtime_checkable
class Executor(Protocol):
    """Runs argv commands on one host. Implementations reuse one connection per instance."""

    #: The host name in results and error messages (``web-1``).
    name: str
    #: Where the host is reached (IP address or DNS name): health-check URLs' ``{address}``.
    address: str

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
        """Run ``argv``; raise ``CommandFailed`` on non-zero exit when ``check`` is true and
        ``CommandTimeout`` past ``timeout`` seconds. ``stdin`` is bytes, or a local file whose
        content is streamed (for bulk data: SSH sends it through OpenSSH)."""
        ...

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        """Copy one local file to ``remote`` (atomically: write a temp name, then rename)."""
        ...

    def put_bytes(self, data: bytes, remote: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``remote`` atomically."""
        ...

    def remote_shell(self) -> RemoteShell | None:
        """How ``rsync -e`` (or another tool that takes a remote shell) reaches this host;
        None when it is this machine and a local copy does."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        ...
