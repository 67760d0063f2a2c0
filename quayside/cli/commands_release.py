"""Release commands: deploy, rollback, releases. deploy and rollback start the catalogue
deployment through the Prefect API (so the run shows in the UI) and follow it to the end.

Who asks is the authenticated principal (:mod:`quayside.cli.requester`): the token's user,
checked and recorded like a gateway submission, or the platform operator (``cli:<login>``)
without a token. Starting a run is :mod:`quayside.cli.run_requests`, following it
:mod:`quayside.cli.run_following`; what a rollback starts is
:mod:`quayside.release.rollback_kind`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quayside.cli.app import app, console
from quayside.cli.run_following import escape, host_count, start_and_follow
from quayside.cli.run_requests import (
    AS_HELP,
    TOKEN_FILE_HELP,
    WAIT_LOCK_HELP,
    asking,
    schedule,
)
from quayside.errors import InputError, QuaysideError

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _parse_batch(value: str | None) -> int | str | None:
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+(\.\d+)?%", text):
        return text
    raise InputError(f"--batch {value!r} is not a number or a percentage like 25%")


@app.command()
def deploy(
    app_name: str = typer.Argument(..., metavar="APP", help="app name from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    ref: str = typer.Argument(..., metavar="REF", help="git tag, branch or commit sha"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would change per host"),
    host: list[str] | None = typer.Option(None, "--host", help="only this host (repeatable)"),
    batch: str | None = typer.Option(None, "--batch", help="hosts per batch: N or N%"),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="follow the run to its end"),
    wait_lock: float | None = typer.Option(
        None, "--wait-lock", metavar="SECONDS", min=0, max=3600, help=WAIT_LOCK_HELP
    ),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
    at: str | None = typer.Option(
        None,
        "--at",
        metavar="TIME",
        help="schedule the deploy: local time ('2026-11-22 23:30', inventory timezone), "
        "ISO 8601, or '+30m'; approval is asked now",
    ),
) -> None:
    """Deploy REF of APP to ENV through the git-deploy flow (shown in the Prefect UI).

    With --at the run is scheduled in Prefect; where the environment needs approval, the
    request is opened now, so the approved deploy starts on time.

    With your token (--token-file or QUAYSIDE_TOKEN) the deploy is yours: your role is checked
    as the gateway checks it, and again when the run starts. Without one the CLI is the
    platform operator (recorded as cli:<login>).
    """
    from quayside.cli.prefect_target import require_platform
    from quayside.commands.git import check_ref

    check_ref(ref)
    parsed = _parse_batch(batch)
    require_platform()  # at once, before the ledger and seconds of Prefect imports
    asked: dict[str, Any] = {"app": app_name, "env": env, "ref": ref, "dry_run": dry_run}
    if host:
        asked["hosts"] = list(host)
    if parsed is not None:
        asked["batch"] = parsed
    if wait_lock is not None:
        asked["lock_wait_s"] = wait_lock
    count = lambda: host_count(app_name, env, host or None)  # noqa: E731
    if at is None and _through_gateway("git-deploy", asked, token_file, as_name, follow, count):
        return
    with asking(token_file, as_name) as (requester, ledger):
        parameters = {**asked, "requested_by": requester.name}
        if at is not None:
            schedule("git-deploy", parameters, requester, ledger, at)
            return
        start_and_follow("git-deploy", parameters, requester, ledger, follow=follow, total=count)


def _through_gateway(
    deployment: str,
    parameters: dict[str, Any],
    token_file: Path | None,
    as_name: str | None,
    follow: bool,
    total: Callable[[], int],
) -> bool:
    """With a token, start the run through the platform's gateway (which checks the token,
    ``--as`` and the role, and records the submission) and follow it; False when there is no
    token or no gateway answers (the command then does those checks itself)."""
    from quayside.cli.gateway_runs import start_via_gateway
    from quayside.cli.requester import given_token
    from quayside.settings import load_settings

    token = given_token(token_file, os.environ)
    if token is None:
        return False
    started = start_via_gateway(load_settings().gateway_url, token, deployment, parameters, as_name)
    if started is None:
        return False
    handle, requester = started
    start_and_follow(
        deployment, {**parameters, "requested_by": requester.name}, requester, None,
        follow=follow, total=total, started=handle,
    )  # fmt: skip
    return True


@app.command(name="rollback")
def rollback_command(
    app_name: str = typer.Argument(..., metavar="APP", help="app name from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    to: str | None = typer.Option(None, "--to", help="release id or version (default previous)"),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="follow the run to its end"),
    wait_lock: float | None = typer.Option(
        None, "--wait-lock", metavar="SECONDS", min=0, max=3600, help=WAIT_LOCK_HELP
    ),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
    kind: str | None = typer.Option(
        None,
        "--kind",
        metavar="git|config|image",
        help="what to roll back: the code (git), the config files (config) or an image app's "
        "container (image: the previous digest with the config it ran with); default the "
        "kind of the newest release (or of --to)",
    ),
) -> None:
    """Roll APP in ENV back to the previous release (or --to a release id or version).

    Every release kind rolls back: code releases go back to an earlier release directory
    (the `rollback` deployment), config releases republish the versions an earlier config
    release published (`config-publish`), image apps run the previously recorded digest
    with the config versions that served with it again (`image-release`); a hello or plugin
    release has no rollback and is refused (quayside.release.rollback_kind). Who asks is
    decided as for `quayside deploy`: your token's user, or the platform operator.
    """
    from quayside.cli.prefect_target import require_platform

    require_platform()  # at once, before the ledger and seconds of Prefect imports
    with asking(token_file, as_name) as (requester, ledger):
        from quayside.release.rollback_kind import rollback_run

        run = rollback_run(
            _ledger(ledger), app_name, env, to=to, kind=kind, requested_by=requester.name
        )
        deployment, parameters = run.deployment, run.parameters
        if wait_lock is not None:
            parameters["lock_wait_s"] = wait_lock
        count = lambda: host_count(app_name, env, None)  # noqa: E731
        try:
            start_and_follow(deployment, parameters, requester, ledger, follow=follow, total=count)
        finally:
            if follow and deployment == "rollback":
                _print_paused(app_name, env, ledger)


def _print_paused(app_name: str, env: str, ledger: Engine | None) -> None:
    """Say that the rollback paused APP/ENV's automatic triggers and how to resume them (a
    code rollback pauses them even when some host failed)."""
    from quayside.ledger.environments import auto_triggers_paused

    try:
        paused = auto_triggers_paused(_ledger(ledger), app_name, env)
    except QuaysideError:
        return  # the run's own outcome is what the user needs first
    if paused is not None:
        console.print(f"[yellow]note:[/] {escape(paused)}", highlight=False)


def _ledger(ledger: Engine | None) -> Engine:
    from quayside.ledger.db import make_engine
    from quayside.settings import load_settings

    return ledger if ledger is not None else make_engine(load_settings().database_url)


@app.command()
def releases(
    app_name: str = typer.Argument(..., metavar="APP", help="app name"),
    env: str = typer.Argument(..., metavar="ENV", help="environment"),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=500, help="how many"),
) -> None:
    """List the releases of APP in ENV, newest first; * marks the current one."""
    # the ledger read without SQLAlchemy's ORM (quayside.ledger.environment_releases): this
    # command should answer at once, and importing the mapped models costs more than the rest
    from rich.table import Table

    from quayside.ledger.environment_releases import INTERRUPTED, list_environment
    from quayside.release.fleet_summary import fleet_line
    from quayside.settings import load_settings

    listing = list_environment(load_settings().database_url, app_name, env, limit)
    rows, current = listing.releases, listing.current
    if not rows:
        console.print(f"no releases of {app_name}/{env} yet", highlight=False)
        return
    table = Table("", "id", "kind", "version", "commit", "who", "when", "status")
    for r in rows:
        mark = "*" if current is not None and r.id == current.id else ""
        when = r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if r.created_at else ""
        status = r.status
        fleet = fleet_line(r.summary) if r.status == INTERRUPTED else None
        if fleet:  # a fleet the dead run left mixed
            status = f"{status}: {fleet}"
        table.add_row(
            mark,
            str(r.id),
            r.kind,
            r.version or "",
            (r.commit_sha or "")[:12],
            r.requested_by or "",
            when,
            escape(status),
        )
    console.print(table)
