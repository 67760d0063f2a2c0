"""The smallest real release: one command on every host of a group, in parallel over SSH."""

from __future__ import annotations

import shlex
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from quayside.deploy.errors import HostsFailed
from quayside.errors import InputError
from quayside.inventory import group_hosts, load_inventory
from quayside.ledger.models import HostStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.releases import HostOutcome
from quayside.markdown_text import cell, code, inline
from quayside.settings import load_settings
from quayside.tasks.fanout import map_hosts
from quayside.tasks.hosts import run_command
from quayside.tasks.release_crash import release_run_died
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.run_authority import confirm_run_authority


def _check_command(command: list[str]) -> None:
    if not command or not command[0]:
        raise InputError("command must be a non-empty list of arguments, e.g. ['uname', '-a']")
    for i, arg in enumerate(command):
        if "\x00" in arg:
            raise InputError(f"command[{i}] contains a NUL byte")


def _report(group: str, command: list[str], rows: list[tuple[str, str, str]]) -> str:
    lines = [
        f"# hello-release on {code(group)}",
        "",
        f"Command: {code(shlex.join(command), limit=500)}",
        "",
        "| host | result | output |",
        "| --- | --- | --- |",
    ]
    for host, result, output in rows:
        shown = cell(output, limit=300, line_breaks=True)
        lines.append(f"| {cell(host)} | {cell(result)} | {shown} |")
    return "\n".join(lines)


@flow(
    name="hello-release",
    # a run killed (SIGKILL, OOM) or cancelled: its release is reconciled with the hosts
    on_crashed=[release_run_died],
    on_cancellation=[release_run_died],
    task_runner=ThreadPoolTaskRunner(max_workers=20),  # type: ignore[arg-type]
    description="Run one command on every host of a group over SSH and record a release.",
)
def hello_release(
    group: str = Field("demo", description="host group (or a single host) from quayside.yaml"),
    command: list[str] = Field(
        default_factory=lambda: ["uname", "-a"],
        description="argv of the command; each item is one argument, no shell",
    ),
    requested_by: str = Field("ui", description="who asked for this run"),
    max_parallel: int = Field(10, ge=1, le=200, description="hosts at once"),
) -> dict[str, Any]:
    """Run ``command`` on every host of ``group`` in parallel and record a release.

    Args:
        group: a host group (or a host name) from the inventory.
        command: the argv to run on each host.
        requested_by: recorded in the ledger.
        max_parallel: at most this many hosts at once.

    Returns:
        ``{"release_id": ..., "hosts": {host: "ok" | error}}``.

    Raises:
        HostsFailed: one or more hosts failed (the release is recorded as failed).
        quayside.errors.NotFoundError: unknown group.
    """
    logger = get_run_logger()
    _check_command(command)
    settings = load_settings()
    inventory = load_inventory(settings.inventory_path)
    requested_by = confirm_run_authority(inventory, {"group": group}, requested_by)
    hosts = group_hosts(inventory, group)
    request = ReleaseRequest(
        "hello",
        group,
        ReleaseKind.hello,
        version=shlex.join(command)[:200],
        requested_by=requested_by,
        # told where an app "hello" in quayside.yaml lists channels (no warning otherwise)
        announce="hello" in inventory.apps,
    )
    with ReleaseLifecycle(request) as life:
        release = life.start()
        logger.info("release %s: %s on %d host(s)", release, shlex.join(command), len(hosts))
        result = map_hosts(
            lambda name: run_command.submit(name, inventory.hosts[name], command),
            hosts,
            max_parallel,
        )
        rows: list[tuple[str, str, str]] = []
        outcomes: list[HostOutcome] = []
        for outcome in result.outcomes:
            status = HostStatus.succeeded if outcome.ok else HostStatus.failed
            message = None if outcome.ok else outcome.message
            outcomes.append(HostOutcome(outcome.host, status, step="command", message=message))
            rows.append(
                (outcome.host, "ok" if outcome.ok else "failed", outcome.value or message or "")
            )
        final = ReleaseStatus.succeeded if result.ok else ReleaseStatus.failed
        text = f"{code(shlex.join(command), limit=200)} on {len(hosts)} host(s)"
        if not result.ok:
            text += f", failed on: {inline(', '.join(o.host for o in result.failed), limit=300)}"
        life.record_hosts(outcomes)
        life.finish(
            final,
            event=final.value,
            text=text,
            summary={"hosts": len(hosts), "failed": len(result.failed)},
        )
    create_markdown_artifact(
        markdown=_report(group, command, rows),
        key=f"hello-release-{group.lower()}"[:100].replace(".", "-").replace("_", "-"),
        description=f"hello-release on {inline(group)}",
    )
    if not result.ok:
        raise HostsFailed(
            f"{len(result.failed)} of {len(result.outcomes)} host(s) failed",
            [(o.host, "command", o.message) for o in result.failed],
        )
    return {"release_id": release, "hosts": {h: r for h, r, _ in rows}}
