"""The typer application and the error boundary every command shares.

Start-up time matters here (``quayside --help`` and ``check`` should answer at once on a busy
machine): this module and the ``commands_*`` modules import only typer and the standard
library at module level; rich, Prefect, SQLAlchemy and pydantic are imported by the commands
that use them. ``tests/unit/test_cli_startup.py`` checks it.
"""

from __future__ import annotations

import os
import sys
import traceback
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import typer

from quayside.errors import QuaysideError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="quayside",
    help="Quayside: releases as Prefect flows. Start with `quayside up` and `quayside check`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: typer's rich help imports rich's Markdown renderer (markdown-it), a
    # third of a second of CPU before `--help` prints anything
    rich_markup_mode=None,
)


class _LazyConsole:
    """A rich Console created on first use (importing rich costs ~0.1 s of CPU)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr

    @cached_property
    def _console(self) -> Console:
        from rich.console import Console

        return Console(stderr=self._stderr, soft_wrap=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console, name)


console = cast("Console", _LazyConsole(stderr=False))
err_console = cast("Console", _LazyConsole(stderr=True))
state = {"verbose": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show tracebacks on errors"),
) -> None:
    state["verbose"] = verbose or os.environ.get("QUAYSIDE_VERBOSE") == "1"


def fail(error: BaseException) -> int:
    """Print ``error`` as one line plus a hint; traceback only with --verbose."""
    if state["verbose"]:
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, QuaysideError):
        for line in str(error).splitlines():
            err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        if error.hint:
            err_console.print(f"[yellow]hint:[/] {error.hint}", highlight=False, soft_wrap=True)
        return 1
    err_console.print(
        f"[bold red]error:[/] unexpected {type(error).__name__}: {error}",
        highlight=False,
        soft_wrap=True,
    )
    err_console.print("[yellow]hint:[/] run again with --verbose and report it", highlight=False)
    return 70
