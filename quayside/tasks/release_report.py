"""What a release run shows about its hosts: artifact keys, one report per host from a
fan-out, and the per-host table artifact - the same for every release flow."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from prefect.artifacts import create_table_artifact

from quayside.fanout import GroupResult
from quayside.release.host_report import HostReport
from quayside.tasks.host_tasks import HostDeployFailed


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from ``parts``.

    Example:
        >>> artifact_key("git-deploy", "Web", "prod_1")
        'git-deploy-web-prod-1'
    """
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def report_of(outcome_error: BaseException | None, value: Any, host: str) -> HostReport:
    """The HostReport of one fan-out outcome (a task that crashed becomes a failed report)."""
    if isinstance(value, HostReport):
        return value
    if isinstance(outcome_error, HostDeployFailed):
        return outcome_error.report
    message = str(outcome_error) if outcome_error is not None else "no result"
    return HostReport(host, "failed", "task", message.splitlines()[0] if message else "")


def reports_of(result: GroupResult[Any]) -> list[HostReport]:
    """One HostReport per host of a fan-out, in its order."""
    return [report_of(o.error, o.value, o.host) for o in result.outcomes]


def host_rows(reports: Sequence[HostReport], skipped: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The per-host table: host, last step, result (with the reason), duration, bytes sent;
    hosts never started are ``skipped``."""
    return [
        {
            "host": r.host,
            "step": r.step,
            "result": r.status if not r.message else f"{r.status}: {r.message}",
            "duration": f"{r.duration_s:.2f}s",
            "bytes": r.bytes_sent,
        }
        for r in reports
    ] + [
        {"host": h, "step": "not started", "result": "skipped", "duration": "", "bytes": 0}
        for h in skipped
    ]


def publish_host_table(
    key: str, description: str, reports: Sequence[HostReport], skipped: Sequence[str] = ()
) -> None:
    """The run's per-host table artifact under ``key`` (see :func:`host_rows`)."""
    create_table_artifact(table=host_rows(reports, skipped), key=key, description=description)
