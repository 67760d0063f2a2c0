"""Release commands: deploy, rollback, releases. deploy and rollback start the catalogue
deployment through the Prefect API (so the run shows in the UI) and follow it to the end.

Who asks is the authenticated principal (:mod:`quayside.cli.requester`): the token's user,
checked and recorded like a gateway submission, or the platform operator (``cli:<login>``)
without a token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quayside.cli.app import app, console
from quayside.errors import InputError, QuaysideError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from quayside.cli.requester import Requester
    from quayside.runs import RunHandle, RunStatus

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


class RunFailed(QuaysideError):
    """The followed flow run ended in a state other than Completed."""


#: how often a followed run's state is read (its logs every few reads: quayside.runs.client):
#: the command sees the run's end this long after it at most; one small read of the API each
FOLLOW_POLL_S = 0.1

_PROGRESS = re.compile(r"^(?P<host>\S+): (?P<what>succeeded|no change|.*round trips)")


def _parse_batch(value: str | None) -> int | str | None:
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+(\.\d+)?%", text):
        return text
    raise InputError(f"--batch {value!r} is not a number or a percentage like 25%")


@contextmanager
def _asking(
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


def _submit(
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
    handle = start_run(deployment, parameters, scheduled_at=scheduled_at, tags=tags)
    record(
        ledger,
        handle,
        requester.principal,
        spec,
        scope,
        via="cli",
        scheduled_at=scheduled_at,
        on_behalf_of=requester.on_behalf_of,
    )
    return handle


def _follow(
    deployment: str,
    parameters: dict[str, Any],
    requester: Requester,
    ledger: Engine | None,
    *,
    follow: bool,
    total: int | Callable[[], int],
    started: RunHandle | None = None,
) -> RunHandle:
    """Start ``deployment`` with ``parameters`` (or take the run the gateway ``started``),
    print its URL, follow logs and state; return the run as soon as it is final and its last
    log lines are in.

    ``total``: the run's host count for the ``[n/total]`` progress, or how to count them
    (called once the run exists: reading the inventory for it need not delay the run)."""
    from quayside.runs import follow_run

    handle = started or _submit(deployment, parameters, requester, ledger)
    console.print(f"started [bold]{handle.name}[/] ({deployment}): {handle.ui_url}")
    if not follow:
        return handle
    # the run now waits for a worker: prepare what its end needs (host count, the ledger
    # and the outcome table) so the command returns right after the run ends
    total = total() if callable(total) else total
    ledger = _warm_outcome(ledger)
    done = 0
    last: list[RunStatus] = []

    def on_state(status: RunStatus) -> None:
        last[:] = [status]
        console.print(f"[dim]state:[/] {status.state_name}", highlight=False)

    for line in follow_run(handle.id, poll_s=FOLLOW_POLL_S, on_state=on_state):
        style = "red" if line.level >= 40 else "yellow" if line.level >= 30 else ""
        text = line.message
        if text.endswith("Finished in state Completed()"):
            continue
        match = _PROGRESS.match(text)
        if match and total:
            done += 1
            text = f"[{done}/{total}] {text}"
        stamp = line.timestamp.astimezone(UTC).strftime("%H:%M:%S")
        body = f"[{style}]{_escape(text)}[/]" if style else _escape(text)
        console.print(f"[dim]{stamp}[/] {body}", highlight=False, soft_wrap=True)
    final = last[0]  # follow_run reports the final state before it returns
    if final.state_type != "COMPLETED":
        first = (final.message or final.state_name).splitlines()[0]
        try:  # what the ledger says each host did (or serves, for a run that died)
            _print_outcome(handle.id, ledger, ended=final.state_name)
        except QuaysideError:
            pass  # the run's own message below still says what happened
        raise RunFailed(
            f"run {handle.name} ended {final.state_name}: {first}",
            hint=f"details in the UI: {handle.ui_url}",
        )
    _print_outcome(handle.id, ledger)
    console.print(f"[green]done:[/] {handle.name} completed", highlight=False)
    return handle


def _schedule(
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
    handle = _submit(deployment, parameters, requester, ledger, scheduled_at=when)
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


def _warm_outcome(ledger: Engine | None) -> Engine:
    """The ledger :func:`_print_outcome` reads (``ledger``, else the settings' one), with the
    ORM's mappers configured and a connection in its pool, and the table's modules loaded:
    about 50 ms of CPU spent while the run waits for a worker instead of after it ended."""
    from rich.table import Table  # noqa: F401
    from sqlalchemy.orm import configure_mappers

    import quayside.release.fleet_summary  # noqa: F401
    from quayside.ledger.db import make_engine
    from quayside.ledger.release_queries import releases_of_run  # noqa: F401
    from quayside.settings import load_settings

    engine = ledger or make_engine(load_settings().database_url)
    configure_mappers()
    try:
        with engine.connect():
            pass
    except Exception:  # noqa: BLE001 - a ledger problem is reported when the outcome is read
        pass
    return engine


def _print_outcome(run_id: str, engine: Engine | None = None, *, ended: str | None = None) -> None:
    """Per-host result of the run, from the ledger (``engine``, else the settings' ledger);
    ``ended``: the state of a run that did not complete (its release may still read
    ``running`` until it is reconciled with the hosts)."""
    from rich.table import Table

    from quayside.ledger.db import make_engine
    from quayside.ledger.release_queries import releases_of_run
    from quayside.release.fleet_summary import fleet_line
    from quayside.settings import load_settings

    ledger = engine or make_engine(load_settings().database_url)
    releases: list[Any] = list(releases_of_run(ledger, run_id))
    if ended in DIED_STATES:
        releases = _wait_reconciled(ledger, run_id, releases)
    for release in releases:
        table = Table("host", "result", "step", "bytes sent", "seconds", title=None)
        for row in sorted(release.hosts, key=lambda h: h.host):
            table.add_row(
                row.host,
                str(row.status),
                row.step or "",
                str(row.bytes_sent or 0),
                f"{row.duration_s:.2f}" if row.duration_s is not None else "",
            )
        fleet = fleet_line(release.summary) if release.status == "interrupted" else None
        status = f"{release.status}: {fleet}" if fleet else str(release.status)
        told = (release.summary or {}).get("line") if release.status == "interrupted" else None
        if ended is not None and release.status == "running":
            status = (
                f"left running by a run that ended {ended}; what each host serves is recorded "
                "by the next deploy or rollback of it, or by `quayside up`"
            )
        console.print(f"release {release.id} ({release.version}): {status}", highlight=False)
        if release.hosts:
            console.print(table)
        for line in _failed_host_lines(release.hosts):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if isinstance(told, str):  # the reconcile's line: which hosts switched, which not
            console.print(_escape(told), highlight=False, soft_wrap=True)
        for warning in (release.summary or {}).get("warnings") or []:
            console.print(f"[yellow]warning:[/] {_escape(str(warning))}", highlight=False)


#: the final states after which Prefect's crash or cancellation hooks reconcile the release
DIED_STATES = frozenset({"Crashed", "Cancelled"})
#: how long the CLI waits for those hooks to record what the hosts serve
RECONCILE_WAIT_S = 10.0


def _wait_reconciled(ledger: Engine, run_id: str, releases: list[Any]) -> list[Any]:
    """The run's releases once none reads ``running`` any more, or as they are after
    :data:`RECONCILE_WAIT_S` (the hook runs after Prefect records the final state)."""
    import time

    from quayside.ledger.release_queries import releases_of_run

    deadline = time.monotonic() + RECONCILE_WAIT_S
    while any(r.status == "running" for r in releases) and time.monotonic() < deadline:
        time.sleep(0.2)
        releases = list(releases_of_run(ledger, run_id))
    return releases


def _failed_host_lines(hosts: Any) -> list[str]:
    """One line per failed host with the first line of why (the table has no room for it):
    ``web-2: exit 3: quayside: current is a directory, not a symlink ...``."""
    lines = []
    for row in sorted(hosts, key=lambda h: h.host):
        if row.status == "failed" and row.message:
            lines.append(f"{row.host}: {row.message.strip().splitlines()[0][:300]}")
    return lines


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _host_count(app_name: str, env: str, hosts: list[str] | None) -> int:
    if hosts:
        return len(hosts)
    try:
        from quayside.inventory import load_inventory
        from quayside.inventory.resolve import resolve_target
        from quayside.settings import load_settings

        inventory = load_inventory(load_settings().inventory_path)
        return len(resolve_target(inventory, app_name, env).hosts)
    except QuaysideError:
        return 0


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
    count = lambda: _host_count(app_name, env, host or None)  # noqa: E731
    if at is None and _through_gateway("git-deploy", asked, token_file, as_name, follow, count):
        return
    with _asking(token_file, as_name) as (requester, ledger):
        parameters = {**asked, "requested_by": requester.name}
        if at is not None:
            _schedule("git-deploy", parameters, requester, ledger, at)
            return
        _follow("git-deploy", parameters, requester, ledger, follow=follow, total=count)


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
    _follow(
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
    with _asking(token_file, as_name) as (requester, ledger):
        from quayside.release.rollback_kind import rollback_run

        run = rollback_run(
            _ledger(ledger), app_name, env, to=to, kind=kind, requested_by=requester.name
        )
        deployment, parameters = run.deployment, run.parameters
        if wait_lock is not None:
            parameters["lock_wait_s"] = wait_lock
        count = lambda: _host_count(app_name, env, None)  # noqa: E731
        try:
            _follow(deployment, parameters, requester, ledger, follow=follow, total=count)
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
        console.print(f"[yellow]note:[/] {_escape(paused)}", highlight=False)


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
            _escape(status),
        )
    console.print(table)
