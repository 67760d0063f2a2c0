"""The lines `quayside deploy`/`rollback` print under the per-host table: each failed host with
the first line of its recorded reason, so the cause is on screen without the run's log."""

from __future__ import annotations

from types import SimpleNamespace

from quayside.cli.run_following import _failed_host_lines
from quayside.ledger.models import HostStatus


def row(host: str, status: HostStatus, message: str | None) -> SimpleNamespace:
    return SimpleNamespace(host=host, status=status, message=message)


def test_failed_hosts_are_listed_with_the_first_line_of_why_in_host_order() -> None:
    rows = [
        row("web-3", HostStatus.failed, "exit 3: quayside: current is a directory, not a symlink\n"
            "  more detail"),
        row("web-1", HostStatus.rolled_back, "switched back"),
        row("web-2", HostStatus.failed, "  cannot connect to 127.0.0.12:22: refused  "),
        row("web-4", HostStatus.failed, None),  # nothing recorded: nothing to add
        row("web-5", HostStatus.succeeded, None),
    ]  # fmt: skip
    assert _failed_host_lines(rows) == [
        "web-2: cannot connect to 127.0.0.12:22: refused",
        "web-3: exit 3: quayside: current is a directory, not a symlink",
    ]


def test_a_long_reason_is_cut_to_one_screen_line_s_worth() -> None:
    (line,) = _failed_host_lines([row("web-1", HostStatus.failed, "x" * 1000)])
    assert line == "web-1: " + "x" * 300
