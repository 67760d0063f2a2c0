"""``quayside api-auth``: the Prefect API's auth string (:mod:`quayside.api_auth`)."""

from __future__ import annotations

import os

import typer

from quayside.api_auth import FILE_SETTING, SERVER_SETTING, new_auth_string, write_auth_file
from quayside.cli.app import app, console
from quayside.errors import QuaysideError
from quayside.settings import load_settings

api_auth_app = typer.Typer(
    help="The Prefect API's auth string (operator command on the platform host).",
    no_args_is_help=True,
)
app.add_typer(api_auth_app, name="api-auth")


@api_auth_app.command("rotate")
def rotate() -> None:
    """Replace the string in QUAYSIDE_HOME/api-auth with a new one (with the platform
    stopped); the next `quayside up` requires it, and the old one stops working."""
    from quayside.stack.supervisor import up_running

    settings = load_settings()
    chosen = next((name for name in (FILE_SETTING, SERVER_SETTING) if os.environ.get(name)), None)
    if chosen:
        raise QuaysideError(
            f"{chosen} is set here: the platform takes its string from there",
            hint=f"change it where it is set and restart `quayside up` (which copies it to "
            f"{settings.api_auth_path})",
        )
    if not settings.home.is_dir():
        raise QuaysideError(
            f"no data directory at {settings.home}",
            hint="set QUAYSIDE_HOME to the platform's data directory; `quayside up` creates "
            "the string on its first start",
        )
    if up_running(settings.home):
        raise QuaysideError(
            f"`quayside up` is running on {settings.home}",
            hint="stop it (Ctrl-C in its terminal), rotate, then start it again",
        )
    write_auth_file(settings.api_auth_path, new_auth_string())
    console.print(
        f"wrote a new Prefect API auth string to {settings.api_auth_path}; the old one no "
        "longer works once `quayside up` starts. Give operators the new one (their "
        "PREFECT_API_AUTH_STRING) and log in to the UI with it again.",
        highlight=False,
    )
