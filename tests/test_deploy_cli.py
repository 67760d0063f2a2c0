"""`quayside deploy` and `quayside releases` as a user runs them: a subprocess against the
session platform; runs go through the Prefect API and the worker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.platform import PROJECT_DIR, Platform
from tests.harness.sshd import SshdFleet
from tests.test_deploy_support import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    repo_fixture,
    write_inventory,
)

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]


def quayside(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env={**platform.env, "COLUMNS": "200"},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_deploy_then_releases(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    out = quayside(platform, "deploy", "shop", "test", "v1", "--as", "erin")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "/runs/flow-run/" in out.stdout and "completed" in out.stdout
    # the per-host outcome, from the ledger (the streamed log lines are best effort)
    for h in fleet:
        assert re.search(rf"{h.name}\W+succeeded\W", out.stdout), out.stdout
    v1 = current_id(fleet[0])
    assert v1 is not None
    for h in fleet:
        assert_complete(h)

    # refused on the client before any run starts: one line and a hint, no traceback
    refused = quayside(platform, "deploy", "shop", "test", "v1;id")
    assert refused.returncode == 1 and "invalid git ref" in refused.stderr
    assert "hint:" in refused.stderr and "Traceback" not in refused.stderr

    listing = quayside(platform, "releases", "shop", "test")
    assert listing.returncode == 0, listing.stderr
    lines = [line for line in listing.stdout.splitlines() if "erin" in line]
    assert lines and "*" in lines[0] and "succeeded" in lines[0] and "v1" in lines[0]


def test_cli_deploy_at_refuses_bad_times_before_anything_is_written(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """``--at`` in the past, not a time, or for an unknown environment: one line and a hint,
    no traceback, no approval request opened and no run created."""
    from sqlalchemy import func, select

    from quayside.ledger.models import ApprovalRequest
    from tests.test_deploy_support import ledger

    write_inventory(platform_inventory, clean_ssh_fleet, repo, env={"approval": {"required": 1}})
    engine = ledger()

    def requests() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(ApprovalRequest)) or 0)

    before = requests()
    cases = [
        (("shop", "test", "v2", "--at", "2001-01-01 00:00"), "not in the future"),
        (("shop", "test", "v2", "--at", "tomorrow"), "is not a time"),
        (("shop", "test", "v2", "--at", "+400d"), "more than a year ahead"),
        (("shop", "nope", "v2", "--at", "+1h"), "nope"),
        (("shop", "test", "v2;id", "--at", "+1h"), "invalid git ref"),
    ]
    for args, message in cases:
        out = quayside(platform, "deploy", *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr + out.stdout
        assert "scheduled" not in out.stdout
    assert requests() == before
