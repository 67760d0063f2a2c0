"""Who asks and how a release command starts its run: the requester of a CLI command (the
token's user, checked and recorded like a gateway submission, or the platform operator
``cli:<login>`` without a token), the submission of a catalogue deployment through the Prefect
API, and scheduling one for later with its approval request opened now.

Shared by ``quayside deploy``/``rollback`` (:mod:`quayside.cli.commands_release`), ``config
publish`` and the container commands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quayside.cli.app import console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from quayside.cli.requester import Requester
    from quayside.runs import RunHandle

TOKEN_FILE_HELP = (
    "file holding your token, readable by you only (default: the QUAYSIDE_TOKEN environment "
    "variable); the run is then yours, checked against your role. Without a token the CLI is "
    "the platform operator (cli:<login>)"
)
AS_HELP = "SUPER only: ask in the name of this user (you are recorded beside them)"
WAIT_LOCK_HELP = (
    "when another run holds the deploy lock of APP/ENV, wait up to this many seconds (at most "
    "3600) for it instead of ending 'not run' at once (the flow's lock_wait_s); a lock whose "
    "run has ended is taken over without waiting"
)


@contextmanager
def asking(
    token_file: Path | None, as_name: str | None
) -> Iterator[tuple[Requester, Engine | None]]:
    """The requester of this command (:func:`quayside.cli.requester.who_asks`) and, with a
    token, the ledger it was checked against (open while the command runs)."""
    from quayside.cli.requester import given_token, who_asks

    token = given_token(token_file, os.environ)
    if token is None:
        yield who_asks(None, None, as_name), None
        return
    from quayside.ledger.db import make_engine
    from quayside.settings import load_settings

    engine = make_engine(load_settings().database_url)
    try:
        yield who_asks(engine, token, as_name), engine
    finally:
        engine.dispose()


def _tags(requester: Requester, parameters: dict[str, Any]) -> list[str]:
    tags = ["trigger:cli", f"app:{parameters['app']}", f"env:{parameters['env']}"]
    if requester.on_behalf_of is not None:
        tags.append(f"on-behalf-of:{requester.on_behalf_of}")
    return tags


def submit(
    deployment: str,
    parameters: dict[str, Any],
    requester: Requester,
    ledger: Engine | None,
    *,
    scheduled_at: datetime | None = None,
) -> RunHandle:
    """Create the run: for a token's user after checking their right on what it acts on (the
    gateway's rule), recording the submission (via ``cli``); for the operator as it is."""
    from quayside.runs import start_run

    tags = _tags(requester, parameters)
    if requester.principal is None or ledger is None:
        return start_run(deployment, parameters, scheduled_at=scheduled_at, tags=tags)
    from quayside.deployments.catalogue import by_name
    from quayside.inventory import load_inventory
    from quayside.runs.submission import authorized_scope, record
    from quayside.settings import load_settings

    spec = by_name(deployment)
    inventory = load_inventory(load_settings().inventory_path)
    scope = authorized_scope(
        ledger, inventory, requester.principal, spec, {**spec.parameters, **parameters}
    )
    handle = start_run(
        deployment, parameters, scheduled_at=scheduled_at, tags=tags, for_submission=True
    )
    return record(  # then released: no worker takes the run before its submission exists
        ledger,
        handle,
        requester.principal,
        spec,
        scope,
        via="cli",
        scheduled_at=scheduled_at,
        on_behalf_of=requester.on_behalf_of,
    )


def schedule(
    deployment: str,
    parameters: dict[str, Any],
    requester: Requester,
    ledger: Engine | None,
    at: str,
) -> None:
    """Schedule ``deployment`` at ``at``; open its approval request now if policy needs one."""
    from quayside.auth.policy import policy_for
    from quayside.cli.at_time import parse_at
    from quayside.inventory import load_inventory
    from quayside.inventory.resolve import resolve_target
    from quayside.ledger.db import make_engine
    from quayside.runs.scheduled_approval import open_for_scheduled_run
    from quayside.runs.submission import undo_on_failure
    from quayside.settings import load_settings

    settings = load_settings()
    inventory = load_inventory(settings.inventory_path)
    app_name, env = str(parameters["app"]), str(parameters["env"])
    target = resolve_target(inventory, app_name, env)  # unknown app/env: refused before any write
    when = parse_at(at, inventory.timezone)
    policy = policy_for(inventory, app_name, env)
    handle = submit(deployment, parameters, requester, ledger, scheduled_at=when)
    request_id = None
    if policy is not None:
        engine = make_engine(settings.database_url)
        try:
            with undo_on_failure(handle, scheduled=True):  # no scheduled run without its request
                request_id = open_for_scheduled_run(
                    engine,
                    flow_run_id=handle.id,
                    deployment=deployment,
                    app=app_name,
                    env=env,
                    version=str(parameters.get("ref", "")),
                    space=target.app.space,
                    policy=policy,
                    scheduled_at=when,
                    requested_by=requester.accountable,
                    via="the CLI",
                    details=f"ref {parameters.get('ref', '')}, "
                    f"{len(parameters.get('hosts') or target.hosts)} host(s)",
                )
        finally:
            engine.dispose()
    local = when.astimezone(_zone(inventory.timezone))
    console.print(
        f"scheduled [bold]{handle.name}[/] ({deployment}) for "
        f"{local:%Y-%m-%d %H:%M:%S} {inventory.timezone} ({when:%H:%M:%S} UTC): {handle.ui_url}",
        highlight=False,
    )
    console.print(f"run id: {handle.id}", highlight=False)
    if policy is not None:
        console.print(
            f"approval request {request_id} is open: {policy.required} approval(s) by "
            f"{policy.role} or above needed before then - `quayside approve {handle.id}`",
            highlight=False,
        )


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
