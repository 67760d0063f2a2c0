"""A ledger another writer holds before a deploy starts (issue 15): the deploy a user submits
with a token waits for it and succeeds. The holder keeps SQLite's write lock past one
attempt's busy timeout, so every write it meets (the submission the gateway records, the run
marking its submission started, the lock, the release recorded running) gets through only by
trying again (the token check's last-used bookkeeping is skipped instead)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quayside.flows.git_deploy import git_deploy
from quayside.ledger.db import BUSY_TIMEOUT_S
from quayside.ledger.models import HostStatus, ReleaseStatus, SubmissionStatus
from quayside.ledger.release_queries import get_release, releases_of_run
from quayside.ledger.submissions import submission_of_run
from quayside.settings import load_settings
from testbed.platform import PROJECT_DIR, Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    ledger,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect, pytest.mark.ssh]

HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute('BEGIN IMMEDIATE')
print('held', flush=True)
time.sleep(float(sys.argv[2]))
db.execute('ROLLBACK')
print('released', time.time(), flush=True)
"""


def test_a_deploy_waits_for_a_ledger_held_before_it_starts(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    from quayside.auth import service

    fleet = clean_ssh_fleet
    database = load_settings().database_url.removeprefix("sqlite:///")
    if database == load_settings().database_url:
        pytest.skip("the platform's ledger is not SQLite")
    write_inventory(platform_inventory, fleet, repo)
    engine = ledger()
    service.create_user(engine, "busy-dev")
    service.grant_role(engine, "busy-dev", "DEVELOPER", space="default")
    token = service.create_token(engine, "busy-dev")

    hold_s = BUSY_TIMEOUT_S + 5  # past one attempt's wait: only a retry gets through
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database, str(hold_s)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        deploy = subprocess.run(
            [sys.executable, "-m", "quayside.cli.main", "deploy", "shop", "test", "v1"],
            env={**platform.env, "COLUMNS": "200", "QUAYSIDE_TOKEN": token},
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out, _ = holder.communicate(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    words = out.split()
    assert words[:1] == ["released"], out  # it held the ledger the whole time, then let go
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    found = re.search(r"/runs/flow-run/([0-9a-f-]{36})", deploy.stdout)
    assert found, deploy.stdout
    run_id = found.group(1)

    # the gateway recorded the submission once the holder let go (its token check skipped
    # only the last-used bookkeeping); the run may have started before it landed
    submission = submission_of_run(engine, run_id)
    assert submission is not None
    assert submission.principal == "busy-dev"
    assert submission.status in (SubmissionStatus.submitted, SubmissionStatus.started)
    assert submission.created_at.timestamp() >= float(words[1])
    [row] = releases_of_run(engine, run_id)
    assert row.status == ReleaseStatus.succeeded
    assert row.requested_by == "busy-dev"
    assert {h.host: h.status for h in row.hosts} == {h.name: HostStatus.succeeded for h in fleet}
    for h in fleet:
        assert current_id(h) == row.details["release_id"]
        assert_complete(h)


LOGGING_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute('BEGIN IMMEDIATE')
with open(sys.argv[3], 'a') as log:
    log.write('held\\n')
time.sleep(float(sys.argv[2]))
db.execute('ROLLBACK')
with open(sys.argv[3], 'a') as log:
    log.write(f'released {time.time()}\\n')
"""


def test_the_release_recorded_as_the_run_starts_waits_for_a_held_ledger(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    tmp_path: Path,
) -> None:
    """The ledger is taken by another writer just before the run records its release running
    (its build command starts the holder, under the deploy lock, right before that write) and
    held past one attempt's busy timeout: the write waits, lands once, and the deploy
    succeeds."""
    fleet = clean_ssh_fleet
    database = load_settings().database_url.removeprefix("sqlite:///")
    if database == load_settings().database_url:
        pytest.skip("the platform's ledger is not SQLite")
    holder = tmp_path / "holder.py"
    holder.write_text(LOGGING_HOLDER)
    log = tmp_path / "holder.log"
    hold_s = BUSY_TIMEOUT_S + 5
    start_holder = (
        f"setsid {shlex.quote(sys.executable)} {shlex.quote(str(holder))} "
        f"{shlex.quote(database)} {hold_s} {shlex.quote(str(log))} </dev/null >/dev/null 2>&1 & "
        f"until grep -q held {shlex.quote(str(log))} 2>/dev/null; do sleep 0.05; done"
    )
    write_inventory(platform_inventory, fleet, repo, app={"build": [start_holder]})
    engine = ledger()

    result = run_flow(git_deploy, "shop", "test", "v1")

    lines = log.read_text().split("\n")
    assert lines[0] == "held" and lines[1].startswith("released "), lines
    released = float(lines[1].split()[1])  # the holder let go by itself, after hold_s
    row = get_release(engine, result["release"])
    assert row.status == ReleaseStatus.succeeded
    assert row.started_at is not None and row.started_at.timestamp() >= released
    assert {h.host: h.status for h in row.hosts} == {h.name: HostStatus.succeeded for h in fleet}
    for h in fleet:
        assert current_id(h) == result["release_id"]
        assert_complete(h)
