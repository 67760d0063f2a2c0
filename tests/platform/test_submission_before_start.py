"""A run never starts before its submission is recorded (quayside.runs.submission), on the
session platform: the worker starts a run within milliseconds of its creation, so a run made
due before its submitter was written down used to start, find no submission, go on as an
operator's run and leave its submission "submitted" forever. Here the ledger is held while the
gateway records, a run made for a submission that never came refuses to act, and a record that
fails leaves no run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from quayside.auth import service
from quayside.auth.submission_tag import SUBMISSION_TAG
from quayside.deployments.catalogue import by_name
from quayside.errors import NotFoundError, QuaysideError
from quayside.ledger.audit import list_events
from quayside.ledger.db import make_engine
from quayside.ledger.models import SubmissionStatus
from quayside.ledger.release_queries import releases_of_run
from quayside.ledger.submissions import submission_of_run
from quayside.runs import find_run_by_key, read_run, start_run
from quayside.runs.client import HELD_NAME, release_run
from quayside.runs.submission import authorized_scope, record
from quayside.settings import load_settings
from testbed.platform import Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    current_id,
    ledger,
    repo_fixture,
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
print('released', flush=True)
"""


def wait_final(run_id: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not read_run(run_id).final:
        assert time.monotonic() < deadline, f"run {run_id} not final: {read_run(run_id)}"
        time.sleep(0.2)


def states_with_times(platform: Platform, run_id: str) -> list[tuple[str, float]]:
    """``(name, timestamp)`` of every state the run went through, oldest first."""

    async def go() -> list[tuple[str, float]]:
        async with platform.client() as client:
            states = await client.read_flow_run_states(UUID(run_id))
        return [(s.name or "", s.timestamp.timestamp()) for s in states]

    return asyncio.run(go())


def test_a_run_submitted_while_the_ledger_is_held_starts_after_its_submission(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """POST /api/runs while another writer holds the ledger: the gateway's record waits, and
    the run waits for it (held as "AwaitingSubmission"), then starts, checks its submitter and marks
    the submission started. A retry with the same key answers the run and moves nothing."""
    database = load_settings().database_url.removeprefix("sqlite:///")
    if database == load_settings().database_url:
        pytest.skip("the platform's ledger is not SQLite")
    write_inventory(platform_inventory, clean_ssh_fleet, repo)
    engine = ledger()
    service.create_user(engine, "early-dev")
    service.grant_role(engine, "early-dev", "DEVELOPER", space="default")
    token = service.create_token(engine, "early-dev")
    body = {
        "deployment": "git-deploy",
        "parameters": {"app": "shop", "env": "test", "ref": "v1", "dry_run": True},
    }
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "early-start-0001"}

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database, "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        answer = httpx.post(
            f"{platform.gateway_url}/api/runs", json=body, headers=headers, timeout=120
        )
        out, _ = holder.communicate(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert out.split() == ["released"], out  # the record waited for the holder
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["flow_run_id"]
    assert answer.json()["status"] == "started"
    wait_final(run_id)

    submission = submission_of_run(engine, run_id)
    assert submission is not None and submission.principal == "early-dev"
    assert submission.status is SubmissionStatus.started  # the run checked its submitter
    states = states_with_times(platform, run_id)
    names = [name for name, _ in states]
    assert names[:3] == [HELD_NAME, "Scheduled", "Pending"], names
    released_at = states[1][1]
    assert submission.created_at.timestamp() <= released_at  # recorded, then released
    final = read_run(run_id)
    assert final.state_type == "COMPLETED", final
    assert SUBMISSION_TAG in final.tags

    again = httpx.post(f"{platform.gateway_url}/api/runs", json=body, headers=headers, timeout=60)
    assert again.status_code == 202, again.text
    assert (again.json()["flow_run_id"], again.json()["status"]) == (run_id, "already_ran")
    assert [name for name, _ in states_with_times(platform, run_id)] == names
    assert read_run(run_id).state_type == "COMPLETED"


def test_a_run_made_for_a_submission_that_never_came_refuses_and_does_nothing(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """A run created held for a submission, then released without it (its trigger's record
    failed and the run could not be deleted): it fails at its start check with the reason,
    touches no host, records no release, and the refusal is in the audit log."""
    write_inventory(platform_inventory, clean_ssh_fleet, repo)
    engine = ledger()
    before = {h.name: current_id(h) for h in clean_ssh_fleet}
    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v1"}, for_submission=True
    )
    assert read_run(handle.id).state_name == HELD_NAME  # no worker takes it while held
    released = release_run(handle)
    assert released.state_name == "Scheduled"
    wait_final(handle.id)

    final = read_run(handle.id)
    assert final.state_type == "FAILED", final
    assert "never recorded" in (final.message or ""), final.message
    assert {h.name: current_id(h) for h in clean_ssh_fleet} == before
    assert releases_of_run(engine, handle.id) == []
    assert submission_of_run(engine, handle.id) is None
    refused = [e for e in list_events(engine) if e.action == "run.refused"]
    assert handle.id in [e.subject_id for e in refused]


def test_a_failed_record_leaves_no_run(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The submission's record fails (a ledger without its tables): the held run it created
    is deleted, so nothing starts and its idempotency key finds no run."""
    write_inventory(platform_inventory, clean_ssh_fleet, repo)
    engine = ledger()
    service.create_user(engine, "lost-dev")
    service.grant_role(engine, "lost-dev", "DEVELOPER", space="default")
    spec = by_name("git-deploy")
    params = {"app": "shop", "env": "test", "ref": "v1"}
    from quayside.inventory import load_inventory

    scope = authorized_scope(
        engine, load_inventory(platform_inventory), "lost-dev", spec, {**spec.parameters, **params}
    )
    handle = start_run(
        "git-deploy", params, idempotency_key="lost-record-0001", for_submission=True
    )
    broken = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")
    try:
        with pytest.raises(Exception, match="run_submissions"):
            record(broken, handle, "lost-dev", spec, scope, via="cli")
    finally:
        broken.dispose()
    with pytest.raises(NotFoundError):
        read_run(handle.id)
    assert find_run_by_key("lost-record-0001") is None
    assert submission_of_run(engine, handle.id) is None


def test_a_run_due_later_than_the_hold_is_created_at_its_time(platform: Platform) -> None:
    """A scheduled submission due after the hold is not held: created Scheduled at its time,
    tagged, with nothing to release (no extra API call)."""
    from datetime import UTC, datetime, timedelta

    when = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    handle = start_run("hello-release", {"group": "demo"}, scheduled_at=when, for_submission=True)
    try:
        assert handle.release_at is None and handle.state_name == "Scheduled"
        assert handle.scheduled_at == when
        assert release_run(handle) is handle
        assert SUBMISSION_TAG in read_run(handle.id).tags
    finally:
        try:
            from quayside.runs import delete_run

            delete_run(handle.id)
        except QuaysideError:
            pass
