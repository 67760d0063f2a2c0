"""`quayside deploy` and `quayside releases` as a user runs them: a subprocess against the
session platform; runs go through the Prefect API and the worker."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.platform import PROJECT_DIR, Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    repo_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]


NO_GATEWAY = {"QUAYSIDE_GATEWAY_PORT": "1"}
"""Where no gateway answers: the CLI checks the token and the role against the ledger itself."""


def quayside(
    platform: Platform, *args: str, token: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env={
            **platform.env,
            "COLUMNS": "200",
            **({"QUAYSIDE_TOKEN": token} if token else {}),
            **(env or {}),
        },
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_deploy_then_releases(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """With a token the deploy is the token's user's: checked like a gateway submission,
    recorded (via cli), and the release lists them as its requester."""
    from quayside.auth import service
    from quayside.ledger.submissions import submission_of_run
    from testbed.release_fixtures import ledger

    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    engine = ledger()
    service.create_user(engine, "erin")
    service.grant_role(engine, "erin", "DEVELOPER", space="default")
    token = service.create_token(engine, "erin")
    out = quayside(platform, "deploy", "shop", "test", "v1", token=token)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out.stdout)
    assert run_id, out.stdout
    submission = submission_of_run(engine, run_id.group(1))
    assert submission is not None
    assert (submission.principal, submission.via) == ("erin", "cli")
    # submitted through the platform's gateway (POST /api/runs), which checked the token
    access = (platform.home / "logs" / "gateway.log").read_text(errors="replace")
    assert any('"/api/runs"' in line and '"erin"' in line for line in access.splitlines())
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


def test_cli_as_is_for_super_only_and_recorded_beside_the_principal(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """``--as`` from a DEVELOPER, or without a token: refused before any run exists. From a
    SUPER user: the run's requested_by parameter is the --as name, the submission and the
    release are the SUPER user's, and the audit event names both. Without a token the CLI
    is the platform operator (``cli:<login>``)."""
    import getpass

    from quayside.auth import service
    from quayside.ledger.audit import list_events
    from quayside.ledger.release_queries import list_releases
    from quayside.runs import read_run
    from testbed.release_fixtures import ledger

    write_inventory(platform_inventory, clean_ssh_fleet, repo)
    engine = ledger()
    service.create_user(engine, "as-dev")
    service.grant_role(engine, "as-dev", "DEVELOPER", space="default")
    service.create_user(engine, "as-root", is_super=True)
    dev, root = service.create_token(engine, "as-dev"), service.create_token(engine, "as-root")

    def run_ids() -> set[str]:
        return {r.flow_run_id or "" for r in list_releases(engine, "shop", "test", limit=500)}

    before = run_ids()
    refusals = [
        (dev, "--as is for SUPER users; as-dev is not one", None),  # the gateway says it
        (dev, "--as is for SUPER users; as-dev is not one", NO_GATEWAY),  # the CLI itself
        (None, "--as", None),
    ]
    for token, message, env in refusals:
        refused = quayside(
            platform, "deploy", "shop", "test", "v1", "--as", "erin", token=token, env=env
        )
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert message in refused.stderr and "Traceback" not in refused.stderr
        assert "started" not in refused.stdout
    assert run_ids() == before

    out = quayside(platform, "deploy", "shop", "test", "v1", "--as", "erin", token=root)
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out.stdout)
    assert found, out.stdout
    run_id = found.group(1)
    run = read_run(run_id)
    assert run.parameters["requested_by"] == "erin" and "on-behalf-of:erin" in run.tags
    event = next(e for e in list_events(engine, subject_id=run_id) if e.action == "run.submitted")
    assert event.actor == "as-root" and event.details is not None
    assert event.details["on_behalf_of"] == "erin" and event.details["via"] == "cli"
    release = next(r for r in list_releases(engine, "shop", "test") if r.flow_run_id == run_id)
    assert release.requested_by == "as-root"

    operator = quayside(platform, "rollback", "shop", "test", "--no-follow")
    assert operator.returncode == 0, operator.stdout + operator.stderr
    found = re.search(r"/runs/flow-run/([0-9a-f-]{36})", operator.stdout)
    assert found, operator.stdout
    assert read_run(found.group(1)).parameters["requested_by"] == f"cli:{getpass.getuser()}"
    deadline = time.monotonic() + 300  # its outcome is not the point: let it end
    while not read_run(found.group(1)).final and time.monotonic() < deadline:
        time.sleep(0.5)


def test_cli_deploy_at_refuses_bad_times_before_anything_is_written(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """``--at`` in the past, not a time, or for an unknown environment: one line and a hint,
    no traceback, no approval request opened and no run created."""
    from sqlalchemy import func, select

    from quayside.ledger.models import ApprovalRequest
    from testbed.release_fixtures import ledger

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


def test_cli_deploy_prints_every_line_of_the_run_and_the_host_count(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """The CLI reads the run's state often and its logs every few reads (then quickly once
    the run is final): every line the run's own process sent to the API is printed, the last
    ones included, and the progress counts the environment's hosts (counted once the run
    exists)."""
    from quayside.runs.prefect_http import PrefectHTTP

    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    out = quayside(platform, "deploy", "shop", "test", "v2")
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out.stdout)
    assert found, out.stdout
    with PrefectHTTP(platform.api_url) as api:
        logs = api.call(
            "POST",
            "/logs/filter",
            {"logs": {"flow_run_id": {"any_": [found.group(1)]}}, "limit": 200},
        )
    # the worker's lines about the run come from another process on its own schedule
    own = [
        log["message"]
        for log in logs
        if log["name"] != "prefect.flow_runs.worker"
        and not log["message"].endswith("Finished in state Completed()")
    ]
    assert len(own) >= len(fleet), own
    missing = [m for m in own if m not in out.stdout]
    assert missing == [], missing
    assert f"[{len(fleet)}/{len(fleet)}] " in out.stdout, out.stdout
    assert "done:" in out.stdout.splitlines()[-1]
