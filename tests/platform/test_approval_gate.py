"""End to end: the approval gate on a real platform. A gated flow run waits in its own
process (Paused) with the RunInput description and the code form; a wrong code and a
REPORTER's answer are recorded as refused and the run keeps waiting; a MASTER's `quayside
approve` (checked and recorded by the CLI, the run woken without input) lets it complete;
nothing secret is left in Prefect; rejection and timeout end the run and are recorded; after
its in-process window the gate suspends the run, and answers (a code from the UI form, the
gateway) still reach it; a pre-approved request passes without waiting."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import pytest
from sqlalchemy import Engine

from quayside.auth import service
from quayside.auth.approvals import expire_overdue, find_for_run, open_request
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals
from quayside.ledger.db import make_engine
from quayside.ledger.models import ApprovalRequest, ApprovalStatus
from quayside.runs import prefect_client, read_run, resume_run, start_run
from testbed.platform import PROJECT_DIR, Platform

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

T = TypeVar("T")
WAIT_S = 240


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def _run_and_inputs(api: str, run_id: str) -> tuple[Any, dict[str, str]]:
    async with prefect_client(api) as client:
        run = await client.read_flow_run(UUID(run_id))
        found = await client.filter_flow_run_input(
            flow_run_id=UUID(run_id), key_prefix="", limit=200, exclude_keys=set()
        )
        return run, {i.key: i.value for i in found}


def run_and_inputs(platform: Platform, run_id: str) -> tuple[Any, dict[str, str]]:
    return asyncio.run(_run_and_inputs(platform.api_url, run_id))


def waiting_on(platform: Platform, run_id: str, attempt: int, state_name: str = "Paused") -> bool:
    """The run waits (``Paused`` in its process, or ``Suspended``) on its ``attempt``-th key."""
    run, _ = run_and_inputs(platform, run_id)
    state = run.state
    return bool(
        state is not None
        and state.name == state_name
        and (state.state_details.pause_key or "").endswith(f"-{attempt}")
    )


@pytest.fixture(scope="module")
def ledger(platform: Platform) -> Engine:
    return make_engine(f"sqlite:///{platform.home / 'ledger.db'}")  # what its runs use


@pytest.fixture(scope="module")
def people(ledger: Engine) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for name, role in (
        ("gate-dev", "DEVELOPER"),
        ("gate-rep", "REPORTER"),
        ("gate-lead", "MASTER"),
    ):
        service.create_user(ledger, name)
        service.grant_role(ledger, name, role, space="default")
        tokens[name] = service.create_token(ledger, name)
    return tokens


def approve_cli(
    platform: Platform, run_id: str, token: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = platform.env | {"QUAYSIDE_TOKEN": token}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "quayside.cli.main",
            "approve",
            run_id,
            "--wait",
            str(WAIT_S),
            *args,
        ],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=WAIT_S + 60,
        check=False,
    )


def request_of(ledger: Engine, run_id: str) -> ApprovalRequest:
    return wait_for("the approval request", lambda: find_for_run(ledger, run_id))


def final_state(run_id: str) -> str:
    return wait_for("the run to finish", lambda: (s := read_run(run_id)).final and s.state_type)


def test_refused_answers_wait_again_then_master_approves(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    handle = start_run(
        "approval-demo", {"app": "gate-a", "version": "v7", "requested_by": "gate-dev"}
    )
    wait_for("Paused", lambda: waiting_on(platform, handle.id, 1))
    _, inputs = run_and_inputs(platform, handle.id)
    description = next(v for k, v in inputs.items() if k.endswith("-1-description"))
    for fact in ("gate-a", "`prod`", "`v7`", "gate-dev", "MASTER or higher", "demo-1"):
        assert fact in description
    assert f"quayside approvals code {handle.id}" in description
    schema = json.loads(next(v for k, v in inputs.items() if k.endswith("-1-schema")))
    assert set(schema["properties"]) == {"code", "decision", "comment", "approver"}
    assert not schema.get("required")  # the CLI, gateway and chat wake it with no input

    # the UI form's answer with a wrong code: refused and recorded, the run waits again
    wrong = "ABCDE-FGHJK"
    assert resume_run(handle.id, {"decision": "approve", "code": wrong}) == "ACCEPT"
    wait_for("the gate to wait again", lambda: waiting_on(platform, handle.id, 2))
    # a REPORTER's answer is refused before the run is touched
    refused = approve_cli(platform, handle.id, people["gate-rep"])
    assert refused.returncode != 0 and "needs MASTER or higher" in refused.stderr
    request = approvals.get_request(ledger, request_of(ledger, handle.id).id)
    assert request.status is ApprovalStatus.pending
    assert [(d.user, d.valid) for d in request.decisions] == [
        ("anonymous", False),
        ("gate-rep", False),
    ]
    assert "wrong approval code" in (request.decisions[0].reason or "")
    assert "gate-rep needs MASTER or higher" in (request.decisions[1].reason or "")
    assert waiting_on(platform, handle.id, 2)
    _, inputs = run_and_inputs(platform, handle.id)
    assert "wrong approval code" in inputs[next(k for k in inputs if k.endswith("-2-description"))]

    done = approve_cli(platform, handle.id, people["gate-lead"], "-m", "ship it")
    assert done.returncode == 0, done.stderr
    assert "approve from gate-lead accepted; request is approved" in done.stdout
    assert final_state(handle.id) == "COMPLETED"

    request = approvals.get_request(ledger, request.id)
    assert request.status is ApprovalStatus.approved
    assert request.decisions[-1].comment == "ship it"
    run, inputs = run_and_inputs(platform, handle.id)
    assert not [k for k in inputs if k.endswith("-response")]
    stored = " ".join(inputs.values())
    assert wrong not in stored
    for token in people.values():
        assert token.rsplit("_", 1)[1] not in stored
    assert run.empirical_policy.pause_keys == {f"approval-{request.id}-{n}" for n in (1, 2)}


def test_rejection_fails_the_run(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    handle = start_run("approval-demo", {"app": "gate-b", "requested_by": "gate-dev"})
    wait_for("Paused", lambda: waiting_on(platform, handle.id, 1))
    done = approve_cli(platform, handle.id, people["gate-lead"], "--reject", "-m", "not today")
    assert done.returncode == 0, done.stderr
    assert final_state(handle.id) == "FAILED"
    assert "rejected by gate-lead: not today" in (read_run(handle.id).message or "")
    request = request_of(ledger, handle.id)
    assert request.status is ApprovalStatus.rejected


def test_timeout_expires_while_waiting_in_the_process(platform: Platform, ledger: Engine) -> None:
    # 0.003 h = 10.8 s, within the in-process window: the gate itself records Expired
    handle = start_run(
        "approval-demo", {"app": "gate-c", "requested_by": "gate-dev", "timeout_hours": 0.003}
    )
    wait_for("Paused", lambda: waiting_on(platform, handle.id, 1))
    assert final_state(handle.id) == "FAILED"
    assert "expired without enough approvals" in (read_run(handle.id).message or "")
    assert request_of(ledger, handle.id).status is ApprovalStatus.expired


def test_timeout_expires_while_suspended(platform: Platform, ledger: Engine) -> None:
    # suspended at once: the Prefect server fails the run when 10.8 s have passed, without
    # running any code; the sweep records Expired
    handle = start_run(
        "approval-demo",
        {"app": "gate-c2", "requested_by": "gate-dev", "timeout_hours": 0.003, "pause_s": 0},
    )
    wait_for("Suspended", lambda: waiting_on(platform, handle.id, 1, "Suspended"))
    assert final_state(handle.id) == "FAILED"
    assert "never resumed" in (read_run(handle.id).message or "")
    request = request_of(ledger, handle.id)
    # the sweep: this call, or the gateway's own periodic one if it came first
    expire_overdue(ledger)
    assert approvals.get_request(ledger, request.id).status is ApprovalStatus.expired


def test_after_its_window_the_gate_suspends_and_answers_still_reach_it(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    """Two approvals needed, 3 s in the process: the run is suspended (its process gone);
    a code typed into the UI form (sent here as the UI sends it) restarts it, the gate takes
    the answer, records it as the code's user, deletes it from Prefect and suspends again for
    the second approval; the gateway's answer (recorded there, the run woken without input)
    completes it."""
    import httpx

    service.create_user(ledger, "gate-lead2")
    service.grant_role(ledger, "gate-lead2", "MASTER", space="default")
    second = service.create_token(ledger, "gate-lead2")
    handle = start_run(
        "approval-demo",
        {"app": "gate-g", "requested_by": "gate-dev", "required": 2, "pause_s": 3},
    )
    wait_for("Paused", lambda: waiting_on(platform, handle.id, 1))
    wait_for("Suspended", lambda: waiting_on(platform, handle.id, 2, "Suspended"))
    code = httpx.post(
        f"{platform.gateway_url}/api/approvals/{handle.id}/code",
        headers={"Authorization": f"Bearer {people['gate-lead']}"},
        timeout=30,
    )
    assert code.status_code == 200, code.text
    assert code.json()["user"] == "gate-lead"
    assert resume_run(handle.id, {"decision": "approve", "code": code.json()["code"]}) == "ACCEPT"
    wait_for(
        "the gate to wait again",
        lambda: (
            waiting_on(platform, handle.id, 3) or waiting_on(platform, handle.id, 4, "Suspended")
        ),
    )
    request = request_of(ledger, handle.id)
    assert request.status is ApprovalStatus.pending
    assert [(d.user, d.valid) for d in request.decisions] == [("gate-lead", True)]
    _, inputs = run_and_inputs(platform, handle.id)
    assert not [k for k in inputs if k.endswith("-response")]
    assert code.json()["code"] not in " ".join(inputs.values())

    reply = httpx.post(
        f"{platform.gateway_url}/api/approvals/{handle.id}",
        json={"decision": "approve", "comment": "second"},
        headers={"Authorization": f"Bearer {second}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "APPROVED"
    assert final_state(handle.id) == "COMPLETED"
    decided = approvals.get_request(ledger, request.id)
    assert [(d.user, d.valid) for d in decided.decisions] == [
        ("gate-lead", True),
        ("gate-lead2", True),
    ]


def test_pre_approved_request_does_not_suspend(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    """A request opened for a scheduled run (its run id, app, env and version), approved
    before the run's time: the run passes its gate without suspending."""
    from quayside.auth.approvals import decide

    handle = start_run(
        "approval-demo",
        {"app": "gate-d", "requested_by": "gate-dev", "version": "v7"},
        scheduled_at=datetime.now(UTC) + timedelta(hours=1),
    )
    request = open_request(
        ledger,
        app="gate-d",
        env="prod",
        space="default",
        summary="scheduled",
        requested_by="gate-dev",
        policy=ApprovalPolicy(required=1),
        flow_run_id=handle.id,
        version="v7",
    )
    assert decide(ledger, request.id, token_text=people["gate-lead"], decision="approve").accepted
    start_now(platform, handle.id)
    assert final_state(handle.id) == "COMPLETED"
    run, _ = run_and_inputs(platform, handle.id)
    assert not run.empirical_policy.pause_keys
    assert approvals.get_request(ledger, request.id).flow_run_id == handle.id


def test_an_approval_of_another_version_or_run_does_not_open_the_gate(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    """The approval bypass of the security review: an approved request cannot open a gate
    for another release. A run's parameters cannot name a request (the flow refuses the
    unknown parameter when the run starts); a request of this run approved for another
    version is voided and the gate waits for a new approval; another run's approved request
    is never looked at."""
    from quayside.auth.approvals import decide

    other = start_run(
        "approval-demo",
        {"app": "gate-e", "requested_by": "gate-dev", "version": "release-1"},
        scheduled_at=datetime.now(UTC) + timedelta(hours=1),
    )
    foreign = open_request(
        ledger, app="gate-e", env="prod", space="default", summary="release-1",
        requested_by="gate-dev", policy=ApprovalPolicy(required=1), flow_run_id=other.id,
        version="release-1",
    )  # fmt: skip
    assert decide(ledger, foreign.id, token_text=people["gate-lead"], decision="approve").accepted
    smuggled = start_run(
        "approval-demo",
        {"app": "gate-e", "version": "release-2", "approval_request_id": foreign.id},
    )
    # the flow takes no such parameter: its process refuses to bind it, before any gate
    assert final_state(smuggled.id) in ("FAILED", "CRASHED")
    assert find_for_run(ledger, smuggled.id) is None
    handle = start_run(
        "approval-demo",
        {"app": "gate-e", "requested_by": "gate-dev", "version": "release-2"},
        scheduled_at=datetime.now(UTC) + timedelta(hours=1),
    )
    stale = open_request(
        ledger, app="gate-e", env="prod", space="default", summary="release-1",
        requested_by="gate-dev", policy=ApprovalPolicy(required=1), flow_run_id=handle.id,
        version="release-1",
    )  # fmt: skip
    assert decide(ledger, stale.id, token_text=people["gate-lead"], decision="approve").accepted
    start_now(platform, handle.id)
    wait_for("Paused", lambda: waiting_on(platform, handle.id, 1))
    assert approvals.get_request(ledger, stale.id).status is ApprovalStatus.voided
    fresh = request_of(ledger, handle.id)
    assert fresh.id not in (stale.id, foreign.id)
    assert fresh.status is ApprovalStatus.pending and fresh.version == "release-2"
    assert approvals.get_request(ledger, foreign.id).flow_run_id == other.id
    asyncio.run(_delete(platform, other.id, handle.id))


def test_a_reporter_cannot_wake_a_suspended_run(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    """Before a waiting run is woken, the answer's sender must be allowed to answer: a
    REPORTER's answer through `quayside approve` and through the gateway, and the requester's
    own approval, are refused and recorded, and the run stays suspended on the same key (it
    was never woken to re-run from the top)."""
    import httpx

    handle = start_run("approval-demo", {"app": "gate-f", "requested_by": "gate-dev", "pause_s": 0})
    wait_for("Suspended", lambda: waiting_on(platform, handle.id, 1, "Suspended"))
    result = approve_cli(platform, handle.id, people["gate-rep"], "--reject")
    assert result.returncode != 0
    assert "REPORTER" in result.stderr + result.stdout and "Traceback" not in result.stderr
    response = httpx.post(
        f"{platform.gateway_url}/api/approvals/{handle.id}",
        json={"decision": "reject", "comment": "wake up"},
        headers={"Authorization": f"Bearer {people['gate-rep']}"},
        timeout=30,
    )
    assert response.status_code == 403, response.text
    assert "gate-rep needs MASTER or higher" in response.json()["error"]
    self_approval = approve_cli(platform, handle.id, people["gate-dev"])
    assert self_approval.returncode != 0 and "may not approve" in self_approval.stderr
    request = request_of(ledger, handle.id)
    assert [(d.user, d.valid) for d in request.decisions] == [
        ("gate-rep", False),
        ("gate-rep", False),
        ("gate-dev", False),
    ]
    time.sleep(2)
    assert waiting_on(platform, handle.id, 1, "Suspended")
    run, _ = run_and_inputs(platform, handle.id)
    assert run.empirical_policy.pause_keys == {f"approval-{request.id}-1"}
    asyncio.run(_delete(platform, handle.id))


def test_an_approval_whose_wake_was_lost_still_reaches_the_suspended_run(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    """The answer is recorded but the run is never woken (the answering process died between
    the two steps, or Prefect was restarting): `quayside approvals sweep` - what the gateway's
    sweep does every minute - finds the suspended run with a decided request and resumes it,
    and the release goes on."""
    from quayside.auth.approvals import decide_as

    handle = start_run("approval-demo", {"app": "gate-w", "requested_by": "gate-dev", "pause_s": 0})
    wait_for("Suspended", lambda: waiting_on(platform, handle.id, 1, "Suspended"))
    request = request_of(ledger, handle.id)
    outcome = decide_as(ledger, request.id, user="gate-lead", decision="approve", comment="lost")
    assert outcome.accepted and outcome.status is ApprovalStatus.approved
    time.sleep(1)
    assert waiting_on(platform, handle.id, 1, "Suspended")  # nobody woke it
    woke = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approvals", "sweep"],
        env=platform.env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert woke.returncode == 0, woke.stdout + woke.stderr
    # the gateway's own sweep may have come first: then this one found nothing left to wake
    assert f"run {handle.id} (approval request {request.id} decided): woken" in woke.stdout or (
        f"run {handle.id}" not in woke.stdout
    ), woke.stdout
    assert final_state(handle.id) == "COMPLETED"
    # its request stays decided, but the run no longer waits: the next sweep leaves it alone
    from quayside.runs.approval_sweep import wake_decided

    assert handle.id in approvals.decided_while_waiting(ledger)
    assert handle.id not in {woken.run_id for woken in wake_decided(ledger)}


def test_a_run_cancelled_while_suspended_has_its_request_voided_by_the_sweep(
    platform: Platform, ledger: Engine, people: dict[str, str]
) -> None:
    """Cancelled in the UI while suspended, the run never reads its request again: the
    approval sweep voids it (instead of leaving it pending until it expires), and answers
    are refused as for any ended run."""
    from quayside.runs.client import cancel_run

    handle = start_run("approval-demo", {"app": "gate-x", "requested_by": "gate-dev", "pause_s": 0})
    wait_for("Suspended", lambda: waiting_on(platform, handle.id, 1, "Suspended"))
    request = request_of(ledger, handle.id)
    assert cancel_run(handle.id, "not tonight") == "ACCEPT"
    assert final_state(handle.id) == "CANCELLED"
    swept = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approvals", "sweep"],
        env=platform.env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert swept.returncode == 0, swept.stdout + swept.stderr
    closed = approvals.get_request(ledger, request.id)
    assert closed.status is ApprovalStatus.voided  # by this sweep, or the gateway's first
    assert f"approval request {request.id} voided" in swept.stdout or (
        f"approval request {request.id}" not in swept.stdout
    ), swept.stdout
    late = approve_cli(platform, handle.id, people["gate-lead"])
    assert late.returncode != 0
    assert "not waiting for approval" in late.stderr + late.stdout, late.stderr
    assert "Traceback" not in late.stderr


def start_now(platform: Platform, run_id: str) -> None:
    """Move a scheduled run's start to now (as "Scheduled", so the worker starts it)."""
    from prefect.states import Scheduled

    async def go() -> None:
        async with platform.client() as client:
            await client.set_flow_run_state(UUID(run_id), Scheduled(), force=True)

    asyncio.run(go())


async def _delete(platform: Platform, *run_ids: str) -> None:
    async with platform.client() as client:
        for run_id in run_ids:
            await client.delete_flow_run(UUID(run_id))
