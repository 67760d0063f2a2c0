"""The typer application and the error boundary every command shares."""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.console import Console

from quayside.errors import QuaysideError

app = typer.Typer(
    name="quayside",
    help="Quayside: releases as Prefect flows. Start with `quayside up` and `quayside check`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
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
