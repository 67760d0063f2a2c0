"""Where a CLI command takes the user's Quayside token from: never the command line (it would
show in ``ps`` and the shell history).

In order: ``--token-file PATH`` (readable by its owner only), the ``QUAYSIDE_TOKEN``
environment variable, or a hidden prompt when stdin is a terminal.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import typer

from quayside.errors import InputError

TOKEN_ENV = "QUAYSIDE_TOKEN"
CREATE_HINT = "create one on the platform host with `quayside tokens create USER`"


def read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace removed).

    Raises:
        InputError: the file is missing or unreadable, group/world-accessible, or empty.
    """
    try:
        info = path.stat()
    except OSError as e:
        raise InputError(f"--token-file {path}: {e.strerror}") from e
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise InputError(
            f"--token-file {path} has mode {mode:04o}: other users can read or change it; "
            f"make it private: chmod 600 {path}",
            hint="the token lets anyone answer approvals as you; if others could read the "
            "file, revoke it (`quayside tokens revoke`) and create a new one",
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--token-file {path}: cannot read it ({e})") from e
    if not token:
        raise InputError(f"--token-file {path} is empty", hint=CREATE_HINT)
    return token


def _prompt() -> str:
    return str(typer.prompt("Quayside token", hide_input=True))


def read_token(
    token_file: Path | None,
    environ: Mapping[str, str],
    *,
    interactive: bool | None = None,
    prompt: Callable[[], str] = _prompt,
) -> str:
    """The user's token from ``token_file``, else ``QUAYSIDE_TOKEN``, else a hidden prompt
    (only when ``interactive``, default: stdin is a terminal).

    Raises:
        InputError: no token from any of them, or a bad token file.
    """
    if token_file is not None:
        return read_token_file(token_file)
    if environ.get(TOKEN_ENV, "").strip():
        return environ[TOKEN_ENV].strip()
    if interactive is None:
        interactive = sys.stdin.isatty()
    if interactive:
        token = prompt().strip()
        if token:
            return token
    raise InputError(
        f"no token: set {TOKEN_ENV}, pass --token-file PATH (a file only you can read), "
        "or run in a terminal to be asked for it",
        hint=CREATE_HINT,
    )
