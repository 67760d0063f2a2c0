"""``quayside config publish PROJECT ENV [SERVICE]``: start the config-publish deployment the
way ``quayside deploy`` starts git-deploy - the same submit path (the token's user checked
and recorded, or the platform operator), the platform's Prefect API, the run followed to its
end - after checking PROJECT, ENV, SERVICE and ``--canary`` against quayside.yaml, so bad
input is one line and creates nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quayside.cli.app import console
from quayside.cli.commands_config import config_app
from quayside.cli.run_requests import AS_HELP, TOKEN_FILE_HELP, WAIT_LOCK_HELP

DEPLOYMENT = "config-publish"


@config_app.command("publish")
def config_publish(
    project: str = typer.Argument(..., metavar="PROJECT", help="config project (an app)"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the project"),
    service: str | None = typer.Argument(
        None, metavar="[SERVICE]", help="service to publish (default: the environment's only one)"
    ),
    canary: int | None = typer.Option(
        None,
        "--canary",
        metavar="N",
        help="publish to the first N hosts first, then wait for an approval before the rest",
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="follow the run to its end"),
    wait_lock: float | None = typer.Option(
        None, "--wait-lock", metavar="SECONDS", min=0, max=3600, help=WAIT_LOCK_HELP
    ),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
) -> None:
    """Publish SERVICE's config files of PROJECT to ENV's hosts (the config-publish flow:
    diff, approval where the policy asks, validate, swap, reload, verify, restore on failure).

    Publishes each file's latest version. Prints the run's link, follows it and ends with
    the outcome: the release and each host's result, or "no change".
    """
    from quayside.cli.prefect_target import require_platform
    from quayside.cli.run_following import start_and_follow
    from quayside.cli.run_requests import asking
    from quayside.config.publish_target import publish_target
    from quayside.inventory import load_inventory
    from quayside.settings import load_settings

    inventory = load_inventory(load_settings().inventory_path)
    target = publish_target(inventory, project, env, service, canary)
    require_platform()  # at once, before the ledger and seconds of Prefect imports
    with asking(token_file, as_name) as (requester, ledger):
        parameters: dict[str, Any] = {
            "app": target.project,
            "env": target.env,
            "service": target.service,
            "requested_by": requester.name,
        }
        if canary is not None:
            parameters["canary"] = canary
        if wait_lock is not None:
            parameters["lock_wait_s"] = wait_lock
        handle = start_and_follow(
            DEPLOYMENT, parameters, requester, ledger, follow=wait, total=target.hosts
        )
        if wait:
            _say_no_change(handle.id, ledger, target.project, target.env, target.service)


def _say_no_change(run_id: str, ledger: Any, project: str, env: str, service: str) -> None:
    """A run that published nothing records no release: say so (else the outcome is the
    release table :func:`quayside.cli.run_following.start_and_follow` printed)."""
    from quayside.ledger.db import make_engine
    from quayside.ledger.release_queries import releases_of_run
    from quayside.settings import load_settings

    engine = ledger if ledger is not None else make_engine(load_settings().database_url)
    if not releases_of_run(engine, run_id):
        console.print(
            f"no change: every host of {project}/{env} already has {service}'s files",
            highlight=False,
        )
