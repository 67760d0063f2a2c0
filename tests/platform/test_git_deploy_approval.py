"""Issues 3 + 4 together: a git deploy to an environment whose policy needs a MASTER's
approval, started through the Prefect API and run by the worker. It waits before touching any
host (holding no deploy lock; first in its own process, then suspended), `quayside approve`
with a MASTER's token records the approval and wakes it, and the release lands on every host
as ONE ledger release with the approval recorded."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from quayside.auth import service
from quayside.auth.approvals import find_for_run
from quayside.flows.git_deploy import git_deploy
from quayside.ledger import approvals
from quayside.ledger.locks import current_lock
from quayside.ledger.models import ApprovalStatus, ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.runs import read_run, start_run
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

T = TypeVar("T")

#: the gate waits Paused in its process, then Suspended
WAITING = ("Paused", "Suspended")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 240) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def chat(platform: Platform, text: str, staff_id: str) -> str:
    """Send ``text`` to the platform's gateway as a signed DingTalk callback from ``staff_id``;
    the robot's reply text."""
    import httpx

    from testbed import dingtalk
    from testbed.platform import PLATFORM_DINGTALK_SECRET

    body, headers = dingtalk.callback(text, secret=PLATFORM_DINGTALK_SECRET, staff_id=staff_id)
    reply = httpx.post(
        f"{platform.gateway_url}/chatops/dingtalk", json=body, headers=headers, timeout=60
    )
    assert reply.status_code == 200, reply.text
    content: str = reply.json()["text"]["content"]
    return content


def requester_and_approver(
    engine: Any,
    inventory: Path,
    fleet: SshdFleet,
    repo: Repo,
    prefix: str,
    unattributed: str = "one_approver",
) -> dict[str, str]:
    """Users ``<prefix>-dev`` (DEVELOPER), ``<prefix>-lead`` and ``<prefix>-lead2`` (MASTER)
    with their tokens, and the inventory's test environment needing one MASTER's approval
    (``unattributed``: what runs started through the Prefect API, as these tests start them,
    need - one approver unless a test says otherwise)."""
    tokens = {}
    users = ((f"{prefix}-dev", "DEVELOPER"), (f"{prefix}-lead", "MASTER"))
    for name, role in (*users, (f"{prefix}-lead2", "MASTER")):
        service.create_user(engine, name)
        service.grant_role(engine, name, role, space="default")
        tokens[name] = service.create_token(engine, name)
    policy = {"required": 1, "role": "MASTER", "unattributed": unattributed}
    write_inventory(inventory, fleet, repo, env={"approval": policy})
    return tokens


def test_gated_deploy_waits_then_deploys_once_approved(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    engine = ledger()
    tokens = requester_and_approver(engine, platform_inventory, fleet, repo, "gd")

    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v2", "requested_by": "gd-dev"}
    )
    wait_for("the gate", lambda: read_run(handle.id).state_name in WAITING)
    # waiting: nothing on the hosts, no deploy lock, the release awaits approval
    assert all(current_id(h) is None for h in fleet)
    assert current_lock(engine, "shop", "test") is None
    waiting = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == handle.id]
    assert [r.status for r in waiting] == [ReleaseStatus.awaiting_approval]
    request = find_for_run(engine, handle.id)
    assert request is not None and "v2" in request.summary
    # the plan came before the gate: per host, what changes
    assert "## Hosts" in request.summary
    assert all(f"| {h.name} | change |" in request.summary for h in fleet)

    answer = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approve", handle.id, "-m", "ship it",
         "--wait", "240"],
        env=platform.env | {"QUAYSIDE_TOKEN": tokens["gd-lead"]},
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert tokens["gd-lead"] not in answer.stdout + answer.stderr

    wait_for("the deploy", lambda: read_run(handle.id).final)
    assert read_run(handle.id).state_type == "COMPLETED", read_run(handle.id).message
    rows = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == handle.id]
    assert [r.status for r in rows] == [ReleaseStatus.succeeded]  # one row despite the re-run
    for h in fleet:
        assert current_id(h) == rows[0].details["release_id"]
        assert_complete(h)
        assert (h.root / "current" / "index.php").read_text() == "<?php echo 'v2';\n"
    decided = approvals.get_request(engine, request.id)
    assert decided.status is ApprovalStatus.approved
    assert [(d.user, d.valid, d.comment) for d in decided.decisions] == [
        ("gd-lead", True, "ship it")
    ]
    assert current_lock(engine, "shop", "test") is None


def approve_with_cli(platform: Platform, run_id: str, token: str) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approve", run_id, "--wait", "240"],
        env=platform.env | {"QUAYSIDE_TOKEN": token},
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stdout + answer.stderr


def test_a_run_nobody_authenticated_needs_two_approvers_and_is_recorded_as_such(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """Started through the Prefect API (as from its UI) with a typed ``requested_by`` of an
    approver: the default ``unattributed: two_approvers`` - that approver's approval counts
    (the typed name is nobody's), but one is not enough; the second deploys."""
    fleet = clean_ssh_fleet
    engine = ledger()
    tokens = requester_and_approver(
        engine, platform_inventory, fleet, repo, "ua", unattributed="two_approvers"
    )
    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v2", "requested_by": "ua-lead"}
    )
    wait_for("the gate", lambda: read_run(handle.id).state_name in WAITING)
    request = find_for_run(engine, handle.id)
    assert request is not None and request.requested_by == "unattributed (typed: ua-lead)"
    approve_with_cli(platform, handle.id, tokens["ua-lead"])
    time.sleep(3)  # the gate re-reads the request; one approval of two must not open it
    assert read_run(handle.id).state_name in WAITING
    assert all(current_id(h) is None for h in fleet)
    approve_with_cli(platform, handle.id, tokens["ua-lead2"])
    wait_for("the deploy", lambda: read_run(handle.id).final)
    assert read_run(handle.id).state_type == "COMPLETED", read_run(handle.id).message
    (row,) = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == handle.id]
    assert row.requested_by == "unattributed (typed: ua-lead)"
    assert row.details["unattributed"] == "two_approvers"
    decided = approvals.get_request(engine, request.id)
    assert sorted(d.user for d in decided.decisions if d.valid) == ["ua-lead", "ua-lead2"]


def test_an_environment_can_refuse_runs_nobody_authenticated(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    engine = ledger()
    requester_and_approver(
        engine, platform_inventory, clean_ssh_fleet, repo, "ur", unattributed="refuse"
    )
    before = len(list_releases(engine, "shop", "test", limit=500))
    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v2", "requested_by": "ur-dev"}
    )
    wait_for("the refusal", lambda: read_run(handle.id).final)
    status = read_run(handle.id)
    assert status.state_type == "FAILED"
    assert "refuses runs nobody authenticated" in (status.message or "")
    assert find_for_run(engine, handle.id) is None  # no approval request opened
    assert len(list_releases(engine, "shop", "test", limit=500)) == before  # nothing recorded
    assert all(current_id(h) is None for h in clean_ssh_fleet)


def test_the_gateway_answers_the_same_gate_reject_then_approve(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """``POST /api/approvals/{run}`` on the platform's own gateway: a rejection ends the run
    with nothing on the hosts; a MASTER's approval resumes the next run, which deploys."""
    import httpx

    fleet = clean_ssh_fleet
    engine = ledger()
    tokens = requester_and_approver(engine, platform_inventory, fleet, repo, "gw")

    def start() -> str:
        handle = start_run(
            "git-deploy", {"app": "shop", "env": "test", "ref": "v2", "requested_by": "gw-dev"}
        )
        wait_for("the gate", lambda: read_run(handle.id).state_name in WAITING)
        return handle.id

    def answer(run_id: str, token: str, decision: str) -> httpx.Response:
        return httpx.post(
            f"{platform.gateway_url}/api/approvals/{run_id}",
            headers={"Authorization": f"Bearer {token}"},
            json={"decision": decision, "comment": f"{decision} via gateway"},
            timeout=60,
        )

    rejected = start()
    reply = answer(rejected, tokens["gw-lead"], "reject")
    assert reply.status_code == 200, reply.text
    assert reply.json()["flow_run_id"] == rejected
    assert tokens["gw-lead"] not in reply.text
    wait_for("the rejection", lambda: read_run(rejected).final)
    assert read_run(rejected).state_type != "COMPLETED"
    assert all(current_id(h) is None for h in fleet)
    rows = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == rejected]
    assert [r.status for r in rows] == [ReleaseStatus.cancelled]
    request = find_for_run(engine, rejected)
    assert request is not None
    assert approvals.get_request(engine, request.id).status is ApprovalStatus.rejected

    approved = start()
    reply = answer(approved, tokens["gw-lead"], "approve")
    assert reply.status_code == 200, reply.text
    wait_for("the deploy", lambda: read_run(approved).final)
    assert read_run(approved).state_type == "COMPLETED", read_run(approved).message
    rows = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == approved]
    assert [r.status for r in rows] == [ReleaseStatus.succeeded]
    for h in fleet:
        assert current_id(h) == rows[0].details["release_id"]
        assert_complete(h)
    request = find_for_run(engine, approved)
    assert request is not None
    decided = approvals.get_request(engine, request.id)
    assert decided.status is ApprovalStatus.approved
    assert [(d.user, d.valid) for d in decided.decisions] == [("gw-lead", True)]


def test_a_chat_approval_resumes_the_same_gate(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """``approve <run>`` in DingTalk (signed as DingTalk signs outgoing-robot callbacks)
    from the chat account of a MASTER: the platform's gateway answers the gate with a
    decision recorded for that user (no token involved), the run resumes and deploys, the
    ledger names the user."""
    fleet = clean_ssh_fleet
    engine = ledger()
    requester_and_approver(engine, platform_inventory, fleet, repo, "ct")
    service.create_user(engine, "ct-chat-lead", dingtalk_id="staff-ct-lead")
    service.grant_role(engine, "ct-chat-lead", "MASTER", space="default")

    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v2", "requested_by": "ct-dev"}
    )
    wait_for("the gate", lambda: read_run(handle.id).state_name in WAITING)

    reply = chat(platform, f" approve {handle.id}", "staff-ct-lead")
    assert handle.id[:8] in reply, reply

    wait_for("the deploy", lambda: read_run(handle.id).final)
    assert read_run(handle.id).state_type == "COMPLETED", read_run(handle.id).message
    request = find_for_run(engine, handle.id)
    assert request is not None
    decided = approvals.get_request(engine, request.id)
    assert decided.status is ApprovalStatus.approved
    assert [(d.user, d.valid) for d in decided.decisions] == [("ct-chat-lead", True)]
    for h in fleet:
        assert_complete(h)


def test_a_scheduled_deploy_approved_at_submit_time_never_waits(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """The task API's scheduled path: the approval request is opened when the deploy is
    submitted and decided before its time; the run starts at that time and deploys without
    suspending, and the request names the run."""
    from datetime import UTC, datetime, timedelta

    from quayside.auth.approvals import decide, open_request
    from quayside.inventory.models import ApprovalPolicy

    fleet = clean_ssh_fleet
    engine = ledger()
    tokens = requester_and_approver(engine, platform_inventory, fleet, repo, "sc")
    handle = start_run(
        "git-deploy",
        {"app": "shop", "env": "test", "ref": "v2", "requested_by": "sc-dev"},
        scheduled_at=datetime.now(UTC) + timedelta(hours=1),
    )
    request = open_request(
        engine,
        app="shop",
        env="test",
        space="default",
        summary="Scheduled git-deploy of v2",
        requested_by="sc-dev",
        policy=ApprovalPolicy(required=1, role="MASTER"),
        flow_run_id=handle.id,
        version="v2",
    )
    assert decide(engine, request.id, token_text=tokens["sc-lead"], decision="approve").accepted
    reschedule_now(platform, handle.id)
    wait_for("the deploy", lambda: read_run(handle.id).final)
    assert read_run(handle.id).state_type == "COMPLETED", read_run(handle.id).message

    names = run_states(platform, handle.id)
    assert "Scheduled" in names and not {"Suspended", "Paused"} & set(names), names
    rows = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == handle.id]
    assert [r.status for r in rows] == [ReleaseStatus.succeeded]
    for h in fleet:
        assert current_id(h) == rows[0].details["release_id"]
    assert approvals.get_request(engine, request.id).flow_run_id == handle.id


def reschedule_now(platform: Platform, run_id: str) -> None:
    """Move a scheduled run's start to now (as "Scheduled", so the worker starts it)."""
    import asyncio
    from uuid import UUID

    from prefect.states import Scheduled

    async def go() -> None:
        async with platform.client() as client:
            await client.set_flow_run_state(UUID(run_id), Scheduled(), force=True)

    asyncio.run(go())


def run_states(platform: Platform, run_id: str) -> list[str]:
    """Names of every state the run went through, oldest first."""
    import asyncio
    from uuid import UUID

    async def go() -> list[str]:
        async with platform.client() as client:
            states = await client.read_flow_run_states(UUID(run_id))
        return [s.name or "" for s in states]

    return asyncio.run(go())


def test_cli_deploy_at_asks_for_approval_now_and_starts_on_time(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """``quayside deploy --at +10m`` to an environment that needs a MASTER's approval: the
    CLI opens the approval request at once and schedules the run; ``quayside approve RUN``
    answers it in the ledger before the run's time (there is no gate to resume yet); the run
    starts when scheduled, never suspends and deploys. (Ten minutes leaves the CLI calls
    time on a loaded machine; once approved, the test moves the run's time to now.)"""
    import re

    fleet = clean_ssh_fleet
    engine = ledger()
    tokens = requester_and_approver(engine, platform_inventory, fleet, repo, "at")

    def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"QUAYSIDE_TOKEN": token} if token else {}
        return subprocess.run(
            [sys.executable, "-m", "quayside.cli.main", *args],
            env=platform.env | {"COLUMNS": "200"} | extra,
            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    out = cli("deploy", "shop", "test", "v2", "--at", "+10m", token=tokens["at-dev"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "scheduled" in out.stdout and "approval request" in out.stdout, out.stdout
    found = re.search(r"run id: ([0-9a-f-]{36})", out.stdout)
    assert found, out.stdout
    run_id = found.group(1)
    status = read_run(run_id)
    assert status.state_type == "SCHEDULED"
    found = find_for_run(engine, run_id)
    assert found is not None
    request_id = found.id
    request = approvals.get_request(engine, request_id)
    assert request.status is ApprovalStatus.pending and request.flow_run_id == run_id
    assert request.requested_by == "at-dev" and "v2" in request.summary

    # the requester may not approve it (a DEVELOPER, and their own request): recorded, refused
    own = cli("approve", run_id, token=tokens["at-dev"])
    assert own.returncode == 1 and "does not count" in own.stderr, own.stdout + own.stderr
    assert approvals.get_request(engine, request_id).status is ApprovalStatus.pending

    answer = cli("approve", run_id, "-m", "tonight is fine", token=tokens["at-lead"])
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "approved" in answer.stdout and tokens["at-lead"] not in answer.stdout
    assert read_run(run_id).state_type == "SCHEDULED"  # still waiting for its time

    reschedule_now(platform, run_id)
    wait_for("the deploy", lambda: read_run(run_id).final)
    assert read_run(run_id).state_type == "COMPLETED", read_run(run_id).message
    names = run_states(platform, run_id)
    assert "Scheduled" in names and not {"Suspended", "Paused"} & set(names), names
    decided = approvals.get_request(engine, request_id)
    assert decided.status is ApprovalStatus.approved
    assert [(d.user, d.valid) for d in decided.decisions] == [
        ("at-dev", False),
        ("at-lead", True),
    ]
    for h in fleet:
        assert_complete(h)
        assert (h.root / "current" / "index.php").read_text() == "<?php echo 'v2';\n"


def test_a_chat_rollback_waits_for_approval_unless_the_policy_exempts_rollbacks(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """``rollback shop test`` in DingTalk, end to end. Where the environment needs approval,
    the rollback suspends before it touches a host; the requester's own answer from chat is
    refused and the gate waits again; a MASTER's ``approve`` resumes it and every host goes
    back. With ``rollback: false`` in the policy, the next chat rollback runs at once (also
    after the first rollback paused automatic triggers: a rollback is not one)."""
    fleet = clean_ssh_fleet
    engine = ledger()
    for name, role in (("rb-dev", "DEVELOPER"), ("rb-lead", "MASTER")):
        service.create_user(engine, name, dingtalk_id=f"staff-{name}")
        service.grant_role(engine, name, role, space="default")
    write_inventory(platform_inventory, fleet, repo)  # no policy yet: deploy v1, v2 at once
    dirs = {}
    for ref in ("v1", "v2"):
        handle = start_run(
            "git-deploy", {"app": "shop", "env": "test", "ref": ref, "requested_by": "rb-dev"}
        )
        wait_for(f"deploy {ref}", lambda h=handle: read_run(h.id).final)
        assert read_run(handle.id).state_type == "COMPLETED", read_run(handle.id).message
        dirs[ref] = current_id(fleet[0])
    write_inventory(
        platform_inventory, fleet, repo, env={"approval": {"required": 1, "role": "MASTER"}}
    )

    def rollback_from_chat() -> str:
        reply = chat(platform, "回滚 shop test", "staff-rb-dev")
        assert "/runs/flow-run/" in reply, reply
        return reply.rstrip().rsplit("/", 1)[-1]

    run_id = rollback_from_chat()
    wait_for("the gate", lambda: read_run(run_id).state_name in WAITING)
    assert all(current_id(h) == dirs["v2"] for h in fleet)
    assert current_lock(engine, "shop", "test") is None
    request = find_for_run(engine, run_id)
    assert request is not None and "Roll back shop/test" in request.summary

    chat(platform, f"approve {run_id}", "staff-rb-dev")  # the requester, a DEVELOPER

    def refused() -> bool:
        decisions = approvals.get_request(engine, request.id).decisions
        return bool(decisions) and read_run(run_id).state_name in WAITING

    wait_for("the refusal", refused)
    first = approvals.get_request(engine, request.id).decisions
    assert [(d.user, d.valid) for d in first] == [("rb-dev", False)]
    assert all(current_id(h) == dirs["v2"] for h in fleet)

    chat(platform, f"approve {run_id}", "staff-rb-lead")
    wait_for("the rollback", lambda: read_run(run_id).final)
    assert read_run(run_id).state_type == "COMPLETED", read_run(run_id).message
    for h in fleet:
        assert current_id(h) == dirs["v1"]
        assert_complete(h)
    decided = approvals.get_request(engine, request.id)
    assert decided.status is ApprovalStatus.approved
    assert [(d.user, d.valid) for d in decided.decisions][-1] == ("rb-lead", True)
    rows = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == run_id]
    assert [(r.kind.value, r.status) for r in rows] == [("rollback", ReleaseStatus.succeeded)]

    write_inventory(
        platform_inventory,
        fleet,
        repo,
        env={"approval": {"required": 1, "role": "MASTER", "rollback": False}},
    )
    again = rollback_from_chat()
    wait_for("the second rollback", lambda: read_run(again).final)
    assert read_run(again).state_type == "COMPLETED", read_run(again).message
    assert not {"Suspended", "Paused"} & set(run_states(platform, again))
    assert find_for_run(engine, again) is None
    rows = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == again]
    assert [(r.kind.value, r.status, r.version) for r in rows] == [
        ("rollback", ReleaseStatus.succeeded, "v2")
    ], rows
    for h in fleet:  # rolling back the rollback undid it
        assert current_id(h) == dirs["v2"]


def test_a_scheduled_deploy_does_not_outlive_its_submitters_role(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """The security review's scheduled-run finding, end to end through the platform's gateway:
    a DEVELOPER schedules a deploy with ``exec_time``; ``quayside roles revoke`` cancels it at
    once (audit event ``run.cancelled``). A second one, whose role is taken away behind the
    CLI's back (straight in the ledger, so nothing cancels it), is refused when it starts: it
    touches no host and records no release, and the refusal is in the audit log."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import httpx

    from quayside.ledger.audit import list_events

    fleet = clean_ssh_fleet
    engine = ledger()
    service.create_user(engine, "sr-dev")
    service.grant_role(engine, "sr-dev", "DEVELOPER", space="default")
    token = service.create_token(engine, "sr-dev")
    write_inventory(platform_inventory, fleet, repo)
    before = {h.name: current_id(h) for h in fleet}

    def schedule(ref: str) -> str:
        later = datetime.now(ZoneInfo("UTC")) + timedelta(hours=3)
        response = httpx.post(
            f"{platform.gateway_url}/api/tasks",
            json={
                "task_name": "nightly",
                "temp_id": "git-deploy",
                "args": {"app": "shop", "env": "test", "ref": ref},
                "exec_time": later.strftime("%Y-%m-%d %H:%M:%S"),
                "schedule": "ready",
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "scheduled"
        run_id: str = response.json()["flow_run_id"]
        return run_id

    first = schedule("v1")
    out = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "roles", "revoke", "sr-dev", "-s", "default"],
        env=platform.env | {"COLUMNS": "200"},
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"scheduled run {first}" in out.stdout and "cancelled" in out.stdout, out.stdout
    assert read_run(first).state_type == "CANCELLED"
    cancelled = [e for e in list_events(engine) if e.action == "run.cancelled"]
    assert [e.subject_id for e in cancelled] == [first]

    service.grant_role(engine, "sr-dev", "DEVELOPER", space="default")
    second = schedule("v2")
    service.revoke_role(engine, "sr-dev", space="default")  # no CLI: nothing cancels it
    reschedule_now(platform, second)
    wait_for("the refused run", lambda: read_run(second).final)
    final = read_run(second)
    assert final.state_type == "FAILED"
    assert "refused at start" in (final.message or ""), final.message
    assert {h.name: current_id(h) for h in fleet} == before
    assert not [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == second]
    refused = [e for e in list_events(engine) if e.action == "run.refused"]
    assert [e.subject_id for e in refused] == [second]


def test_a_gated_redeploy_of_what_every_host_serves_asks_nobody(
    run_flow: Any, platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet,
    repo: Repo,
) -> None:  # fmt: skip
    """The plan comes before the gate: every host already serves v1's commit, so re-deploying
    v1 to an environment that needs an approval asks nobody and ends "no change"."""
    fleet = clean_ssh_fleet
    engine = ledger()
    write_inventory(platform_inventory, fleet, repo)
    first = run_flow(git_deploy, "shop", "test", "v1", requested_by="alice")
    requester_and_approver(engine, platform_inventory, fleet, repo, "nc")

    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": "v1", "requested_by": "nc-dev"}
    )
    wait_for("the deploy", lambda: read_run(handle.id).final)
    assert read_run(handle.id).state_type == "COMPLETED", read_run(handle.id).message
    assert find_for_run(engine, handle.id) is None  # no approval request: nobody was asked
    (row,) = [r for r in list_releases(engine, "shop", "test") if r.flow_run_id == handle.id]
    assert row.status == ReleaseStatus.cancelled
    assert (row.summary or {})["result"] == "no change"
    assert {(h.host, h.step) for h in row.hosts} == {(h.name, "plan") for h in fleet}
    assert all(current_id(h) == first["release_id"] for h in fleet)  # nothing was sent
