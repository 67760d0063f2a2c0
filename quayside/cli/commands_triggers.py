"""``quayside triggers status|resume APP ENV``: whether automatic triggers (git hooks, chat
deploys, schedules) may start releases of an app's environment, and turning them back on.

A rollback pauses them (:mod:`quayside.flows.rollback`), so the next push does not deploy the
broken version again; resuming is the decision that the fix is in, so it needs MASTER on the
app (the approver role), more than the DEVELOPER who may roll back. With a token
(``--token-file`` or ``QUAYSIDE_TOKEN``) that role is checked on the token's user; without one
the CLI is the platform operator (``cli:<login>``), who holds the ledger anyway. Every resume is
one audit event (``environment.auto_triggers_resumed``, naming who paused and why).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from quayside.cli.app import app, console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from quayside.inventory import Inventory

#: the lowest role that may resume an app's automatic triggers (docs/security.md)
RESUME_ROLE = "MASTER"

TOKEN_HELP = (
    "file holding your token, readable by you only (default: the QUAYSIDE_TOKEN environment "
    "variable); your role on the app is then checked. Without a token the CLI is the platform "
    "operator (cli:<login>)"
)

triggers = typer.Typer(
    name="triggers",
    help="Automatic triggers (hooks, chat deploys, schedules) of an app's environment: a "
    "rollback pauses them; `resume` turns them back on.",
    no_args_is_help=True,
)
app.add_typer(triggers)


@contextmanager
def _ledger_and_actor(
    token_file: Path | None, app_name: str, env: str, *, minimum: str | None
) -> Iterator[tuple[Engine, str]]:
    """The ledger and who acts: the token's user, checked for ``minimum`` on the app (nothing
    checked for ``None``), or the platform operator without a token.

    Raises:
        NotFoundError: APP or ENV is not in quayside.yaml.
        AuthFailed: the token is not accepted.
        PermissionDenied: the user lacks ``minimum`` on the app, naming the role needed.
    """
    from quayside.cli.requester import given_token, operator_name
    from quayside.inventory import load_inventory
    from quayside.ledger.db import make_engine
    from quayside.settings import load_settings

    settings = load_settings()
    space = _space_of(load_inventory(settings.inventory_path), app_name, env)
    token = given_token(token_file, os.environ)
    engine = make_engine(settings.database_url)
    try:
        if token is None:
            yield engine, operator_name()
            return
        from quayside.auth.roles import require_role
        from quayside.auth.service import authenticate

        user = authenticate(engine, token).name
        if minimum is not None:
            require_role(engine, user, space, app_name, minimum)
        yield engine, user
    finally:
        engine.dispose()


def _space_of(inventory: Inventory, app_name: str, env: str) -> str:
    """The space of ``app_name``, once ``env`` is known to be one of its environments.

    Raises:
        NotFoundError: unknown app or environment, naming what exists.
    """
    from quayside.inventory.resolve import app_of

    return app_of(inventory, app_name, env).space


@triggers.command(name="status")
def triggers_status(
    app_name: str = typer.Argument(..., metavar="APP", help="app name from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    token_file: Path | None = typer.Option(None, "--token-file", help=TOKEN_HELP, dir_okay=False),
) -> None:
    """Say whether automatic triggers of APP in ENV are paused, by whom, when and why."""
    from quayside.ledger.environments import auto_triggers_paused

    with _ledger_and_actor(token_file, app_name, env, minimum="REPORTER") as (engine, _):
        paused = auto_triggers_paused(engine, app_name, env)
    if paused is None:
        console.print(f"automatic triggers for {app_name}/{env} are on", highlight=False)
    else:
        console.print(paused, highlight=False)


@triggers.command(name="resume")
def triggers_resume(
    app_name: str = typer.Argument(..., metavar="APP", help="app name from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    token_file: Path | None = typer.Option(None, "--token-file", help=TOKEN_HELP, dir_okay=False),
) -> None:
    """Let git hooks, chat deploys and schedules start releases of APP in ENV again (after a
    rollback paused them). Needs MASTER on the app with a token; recorded in the audit log."""
    from quayside.ledger.environments import auto_triggers_paused, resume_auto_triggers

    with _ledger_and_actor(token_file, app_name, env, minimum=RESUME_ROLE) as (engine, actor):
        paused = auto_triggers_paused(engine, app_name, env)
        if paused is None:
            console.print(
                f"automatic triggers for {app_name}/{env} are not paused; nothing to resume",
                highlight=False,
            )
            return
        resume_auto_triggers(engine, app_name, env, actor=actor)
    console.print(
        f"resumed automatic triggers for {app_name}/{env} (as {actor}); they were: {paused}",
        highlight=False,
    )
