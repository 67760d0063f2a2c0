"""Following a release run from the CLI: its URL, its log lines with ``[n/total]`` progress as
they arrive, its final state, and what the ledger says each host did (the outcome table, the
failed hosts' reasons, an interrupted fleet's split).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any

from quayside.cli.app import console
from quayside.errors import QuaysideError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from quayside.cli.requester import Requester
    from quayside.runs import RunHandle, RunStatus


class RunFailed(QuaysideError):
    """The followed flow run ended in a state other than Completed."""


#: how often a followed run's state is read (its logs every few reads: quayside.runs.client):
#: the command sees the run's end this long after it at most; one small read of the API each
FOLLOW_POLL_S = 0.1

_PROGRESS = re.compile(r"^(?P<host>\S+): (?P<what>succeeded|no change|.*round trips)")


def start_and_follow(
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
    from quayside.cli.run_requests import submit
    from quayside.runs import follow_run

    handle = started or submit(deployment, parameters, requester, ledger)
    console.print(f"started [bold]{handle.name}[/] ({deployment}): {handle.ui_url}")
    if not follow:
        return handle
    # the run now waits for a worker: prepare what its end needs (host count, the ledger
    # and the outcome table) so the command returns right after the run ends
    total = total() if callable(total) else total
    ledger = warm_outcome(ledger)
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
        body = f"[{style}]{escape(text)}[/]" if style else escape(text)
        console.print(f"[dim]{stamp}[/] {body}", highlight=False, soft_wrap=True)
    final = last[0]  # follow_run reports the final state before it returns
    if final.state_type != "COMPLETED":
        first = (final.message or final.state_name).splitlines()[0]
        try:  # what the ledger says each host did (or serves, for a run that died)
            print_outcome(handle.id, ledger, ended=final.state_name)
        except QuaysideError:
            pass  # the run's own message below still says what happened
        raise RunFailed(
            f"run {handle.name} ended {final.state_name}: {first}",
            hint=f"details in the UI: {handle.ui_url}",
        )
    print_outcome(handle.id, ledger)
    console.print(f"[green]done:[/] {handle.name} completed", highlight=False)
    return handle


def warm_outcome(ledger: Engine | None) -> Engine:
    """The ledger :func:`print_outcome` reads (``ledger``, else the settings' one), with the
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


def print_outcome(run_id: str, engine: Engine | None = None, *, ended: str | None = None) -> None:
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
            console.print(escape(told), highlight=False, soft_wrap=True)
        for warning in (release.summary or {}).get("warnings") or []:
            console.print(f"[yellow]warning:[/] {escape(str(warning))}", highlight=False)


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


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def host_count(app_name: str, env: str, hosts: list[str] | None) -> int:
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
