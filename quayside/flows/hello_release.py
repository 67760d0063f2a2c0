"""The smallest real release: one command on every host of a group, in parallel over SSH."""

from __future__ import annotations

import shlex
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from quayside.deploy.errors import HostsFailed
from quayside.errors import InputError
from quayside.inventory import group_hosts
from quayside.ledger.models import ReleaseKind
from quayside.markdown_text import cell, code, inline
from quayside.release.host_outcomes import failed_rows
from quayside.release.host_report import HostReport
from quayside.tasks.hosts import run_command
from quayside.tasks.release_flow import release_flow
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.release_report import artifact_key
from quayside.tasks.release_resolve import resolve_release
from quayside.tasks.sync_body import run_sync_body


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


@release_flow(
    "hello-release",
    "Run one command on every host of a group over SSH and record a release.",
    max_workers=20,
)
async def hello_release(
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
    return await run_sync_body(
        hello_body,
        group=group,
        command=command,
        requested_by=requested_by,
        max_parallel=max_parallel,
    )


def hello_body(
    *, group: str, command: list[str], requested_by: str, max_parallel: int
) -> dict[str, Any]:
    """The body of :func:`hello_release` (its docstring says what it does and returns), run
    in a thread by :func:`quayside.tasks.sync_body.run_sync_body`."""
    logger = get_run_logger()
    _check_command(command)
    resolved = resolve_release({"group": group}, requested_by, target=False)
    inventory, requested_by = resolved.inventory, resolved.requested_by
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
    outputs: dict[str, str] = {}

    def on_host(name: str) -> HostReport:
        outputs[name] = run_command(name, inventory.hosts[name], command)
        return HostReport(name, "succeeded", "command")

    argv = shlex.join(command)[:200]
    with ReleaseLifecycle(request) as life:
        release = life.start()
        logger.info("release %s: %s on %d host(s)", release, shlex.join(command), len(hosts))
        key = artifact_key("hello-release", group)
        life.show_hosts(key, f"hello-release on {inline(group)}")
        applied = life.apply(hosts, on_host, action="command", max_parallel=max_parallel)
        # no failure threshold here: one failed host fails the run
        life.finish_applied(applied, f"{argv} on {len(hosts)} host(s)", any_failure_fails=True)
    rows = [
        (r.host, "ok" if r.ok else "failed", outputs.get(r.host, r.message))
        for r in applied.reports
    ]
    create_markdown_artifact(
        markdown=_report(group, command, rows),
        key=artifact_key("hello-release", group, "output"),
        description=f"hello-release output on {inline(group)}",
    )
    if applied.bad:
        raise HostsFailed(
            f"{len(applied.bad)} of {len(applied.reports)} host(s) failed",
            failed_rows(applied.reports),
        )
    return {"release_id": release, "hosts": {h: r for h, r, _ in rows}}
