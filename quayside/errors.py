"""The exception hierarchy: every error a user sees names the thing and the next step.

Each class carries a message and an optional ``hint`` (what to do next). The CLI and the
gateway print ``str(error)`` and the hint; tracebacks only with ``--verbose``.
"""

from __future__ import annotations

from collections.abc import Sequence


class QuaysideError(Exception):
    """Base class: a failure the user can act on."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(QuaysideError):
    """quayside.yaml (or another configuration source) is wrong; the message has the key path."""

    hint = "fix the file and run `quayside check`"


class NotFoundError(QuaysideError):
    """A named thing (app, environment, host, group, release, deployment) does not exist."""


class InputError(QuaysideError):
    """A value given by a user (CLI argument, API field, flow parameter) is not acceptable."""


def tail(text: str, lines: int = 5, limit: int = 500) -> str:
    """The last ``lines`` lines of ``text`` (at most ``limit`` characters), for error messages."""
    kept = "\n".join(text.strip().splitlines()[-lines:])
    return kept[-limit:]


class HostError(QuaysideError):
    """Something failed on a host: carries the host, the command, the exit code and stderr tail."""

    def __init__(
        self,
        host: str,
        message: str,
        *,
        command: Sequence[str] | None = None,
        exit_code: int | None = None,
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        self.host = host
        self.command = list(command) if command is not None else None
        self.exit_code = exit_code
        self.stderr_tail = tail(stderr)
        text = f"{host}: {message}"
        if exit_code is not None:
            text += f" (exit {exit_code})"
        if self.stderr_tail:
            text += f": {self.stderr_tail}"
        super().__init__(text, hint=hint)


class CommandFailed(HostError):
    """A command ran on a host and exited non-zero."""


class CommandTimeout(HostError):
    """A command ran on a host past its timeout and was stopped."""


class ConnectError(HostError):
    """The host could not be reached (refused, no route, DNS, timeout)."""

    hint = "check that the host is up and that address and port in quayside.yaml are right"


class ConnectionLost(ConnectError):
    """The connection to a host broke while a command ran there (it was connected, and the
    command had started): the command may have done part of its work. A ConnectError, so
    whatever handles an unreachable host handles this too."""

    hint = (
        "the command may have run in part: check that the host is up, then run the "
        "release again (a partial release directory is removed by the next deploy)"
    )


class AuthError(HostError):
    """The host refused our credentials."""

    hint = "check the host's user and key_file in quayside.yaml and the key in authorized_keys"


class HostKeyError(HostError):
    """The host's key is unknown or does not match known_hosts."""

    hint = (
        "verify the host key out of band and add it to known_hosts "
        "(ssh-keyscan), or set verify_host_key: false for this host"
    )


class LockHeldError(QuaysideError):
    """Another run holds the deploy lock for this app+environment."""


class HookError(QuaysideError):
    """A pre/post hook exited non-zero; the run stops."""


class LedgerError(QuaysideError):
    """The ledger database refused an operation or is not migrated."""
