"""What a host's report becomes in the ledger, and how a run's outcome reads in a notification:
the same for every release kind."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from quayside.ledger.models import HostStatus
from quayside.ledger.releases import HostOutcome
from quayside.markdown_text import inline

LEDGER_STATUS = {
    "succeeded": HostStatus.succeeded,
    "no_change": HostStatus.succeeded,
    "failed": HostStatus.failed,
    "rolled_back": HostStatus.rolled_back,
    "skipped": HostStatus.skipped,
}
"""A host report's status -> the ledger's host status (no change is a host that serves it)."""


class Reported(Protocol):
    """The fields of a host report the ledger keeps (``quayside.deploy`` HostReport and every
    other release kind's report have them)."""

    @property
    def host(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def duration_s(self) -> float: ...


def host_outcomes(reports: Iterable[Reported]) -> list[HostOutcome]:
    """One ledger row per report."""
    return [
        HostOutcome(
            r.host,
            LEDGER_STATUS.get(r.status, HostStatus.failed),
            step=r.step,
            message=r.message or None,
            bytes_sent=r.bytes_sent,
            duration_s=r.duration_s,
        )
        for r in reports
    ]


def outcome_text(headline: str, failed: Sequence[tuple[str, str, str]], shown: int = 10) -> str:
    """A notification's details: ``headline`` and one line per failed ``(host, step, message)``
    (at most ``shown``, then how many more).

    Example:
        >>> print(outcome_text("1 of 2 host(s) failed", [("web-1", "health", "HTTP 502")]))
        1 of 2 host(s) failed
        - web-1 [health]: HTTP 502
    """
    lines = [inline(headline)]
    lines += [
        f"- {inline(h)} [{inline(step)}]: {inline(msg)[:200]}" for h, step, msg in failed[:shown]
    ]
    if len(failed) > shown:
        lines.append(f"- … and {len(failed) - shown} more")
    return "\n".join(lines)


def failed_rows(reports: Iterable[Reported]) -> list[tuple[str, str, str]]:
    """``(host, step, message)`` of every failed report (for errors and notifications)."""
    return [(r.host, r.step, r.message) for r in reports if r.status == "failed"]
