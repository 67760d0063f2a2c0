"""The quoting boundary: where an argv list becomes the one shell string a remote host runs.

The remote sshd hands a command to the user's login shell, so every word is quoted with
:mod:`shlex` here and nothing else is ever concatenated into it. Both SSH transports (paramiko
and OpenSSH) send what :func:`remote_command` returns; no other module quotes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from quayside.errors import InputError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def remote_command(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> str:
    """The shell command line that runs ``argv`` on the remote host, quoted with shlex only.

    ``cd <cwd> && exec env K=V ... argv...``: ``exec`` replaces the login shell with the
    command, so a signal sent to the session (on timeout) reaches the command itself.

    Args:
        argv: Program and arguments; each becomes exactly one word.
        env: Extra environment variables, passed through ``env``.
        cwd: Directory to run in.

    Returns:
        The command line for the remote login shell.

    Raises:
        InputError: ``argv`` is empty or an env var name is not a valid identifier.
    """
    if not argv:
        raise InputError("empty command")
    words = list(argv)
    if env:
        for key in env:
            if not ENV_NAME.match(key):
                raise InputError(f"invalid environment variable name {key!r}")
        words = ["env", *(f"{key}={value}" for key, value in env.items()), *words]
    line = "exec " + shlex.join(words)
    if cwd is not None:
        line = f"cd {shlex.quote(cwd)} && {line}"
    return line


def ssh_config_path(path: Path) -> str:
    """``path`` as an OpenSSH option value: ``%`` escaped, double-quoted (whitespace separates
    values in UserKnownHostsFile)."""
    text = str(path)
    if '"' in text:
        raise InputError(f"path {text!r} contains a double quote; OpenSSH cannot take it")
    return '"' + text.replace("%", "%%") + '"'
