"""Releases across workers on the production stack run as processes (testbed/process_stack.py:
the compose file's commands and settings, PostgreSQL for Prefect and the ledger, Redis, the
API server --no-services, Prefect's services apart, two workers taking one run at a time, the
gateway), on real sshd hosts (issue 19).

Releases of two apps run on the two workers at the same time; two releases of one app and
environment never overlap, whichever workers take them: the second is recorded not run, or
waits for the ledger's lease and then runs after the first. A worker SIGKILLed with its run's
processes mid-release: its heartbeats stop, Prefect's automation (through the services process
and Redis) marks the run Crashed, and the next release takes the lease over, records the dead
one interrupted and completes on every host. The Prefect server and PostgreSQL restarted while
a release waits suspended for its approval: the approval is given and the release completes.
Two scheduled deploys (``quayside deploy --at``, a user's token) with both workers woken when
they fall due: each slot starts once (one Pending and one Running state, one ledger release,
one switch per host), each worker runs one, any second claim of a slot is refused by Prefect.
The services process's health check (the compose healthcheck): healthy, unhealthy naming it
while it is stopped and while it is dead, healthy again once resumed and restarted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from quayside.auth import service
from quayside.ledger.db import make_engine
from quayside.ledger.locks import current_lock
from quayside.ledger.models import ReleaseStatus, SubmissionStatus
from quayside.ledger.release_queries import releases_of_run
from quayside.ledger.submissions import submission_of_run
from quayside.runs import read_run, start_run
from quayside.runs.heartbeats import ZOMBIE_AUTOMATION, zombie_automation
from testbed.platform import PROJECT_DIR, _refresh_prefect_settings
from testbed.process_stack import ProcessStack
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    host_entries,
    release_ids,
    repo_fixture,
)
from testbed.sshd import SshdFleet

pytestmark = [
    pytest.mark.xdist_group("process-stack"),
    pytest.mark.prefect,
    pytest.mark.ssh,
    pytest.mark.postgres,
]

WORKER_LABEL = "prefect.worker.name"


@pytest.fixture(scope="module")
def stack(process_stack: ProcessStack) -> Iterator[ProcessStack]:
    """The process stack, with this process's Prefect and Quayside clients pointed at it."""
    changes = {
        k: v
        for k, v in process_stack.client_env().items()
        if k.startswith(("PREFECT_", "QUAYSIDE_"))
    }
    old = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    _refresh_prefect_settings()
    try:
        yield process_stack
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_prefect_settings()


@pytest.fixture
def ledger_engine_of(stack: ProcessStack) -> Iterator[Engine]:
    engine = make_engine(stack.ledger_url())
    try:
        yield engine
    finally:
        engine.dispose()


def write_apps(stack: ProcessStack, fleet: SshdFleet, repo: Repo, hold: str) -> None:
    """Apps ``shop`` and ``cart`` (the same repository, their own deploy roots), environment
    ``test`` on every fleet host; each release waits ``hold`` on the hosts before its switch."""

    def app(root: str) -> dict[str, Any]:
        return {
            "repo": str(repo.path),
            "deploy_root": str(fleet.base_dir / "{host}" / root),
            "environments": {"test": {"hosts": [h.name for h in fleet]}},
            "hooks": {"pre_switch": [f"sleep {hold}"]},
        }

    stack.inventory.write_text(
        yaml.safe_dump(
            {"hosts": host_entries(fleet), "apps": {"shop": app("root"), "cart": app("cart")}}
        )
    )


def wait_final(run_id: str, timeout_s: float = 240) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = read_run(run_id)
        if status.final:
            return status.state_type
        assert time.monotonic() < deadline, f"run {run_id} still {status.state_type}"
        time.sleep(0.5)


def worker_of(stack: ProcessStack, run_id: str) -> str:
    """The worker that started the run (the label Prefect's worker gives the run)."""
    from prefect.client.orchestration import PrefectClient

    async def read() -> str:
        async with PrefectClient(api=stack.api_url, auth_string=stack.auth_string) as client:
            run = await client.read_flow_run(UUID(run_id))
            return str(run.labels.get(WORKER_LABEL, ""))

    return asyncio.run(read())


def deploy(app: str, ref: str, **extra: Any) -> str:
    return start_run(
        "git-deploy", {"app": app, "env": "test", "ref": ref, "requested_by": "ops", **extra}
    ).id


def holds_lease(engine: Engine, app: str, run_id: str) -> None:
    """Wait until run ``run_id`` holds the lease of ``app``/test (its release has begun)."""
    deadline = time.monotonic() + 120
    while True:
        lock = current_lock(engine, app, "test")
        if lock is not None and lock.flow_run_id == run_id:
            return
        assert time.monotonic() < deadline, f"run {run_id} never took the lease of {app}/test"
        time.sleep(0.3)


def test_releases_of_two_apps_run_on_two_workers_at_once(
    stack: ProcessStack, clean_ssh_fleet: SshdFleet, repo: Repo, ledger_engine_of: Engine
) -> None:
    fleet = clean_ssh_fleet
    write_apps(stack, fleet, repo, hold="20")
    shop = deploy("shop", "v1")
    holds_lease(ledger_engine_of, "shop", shop)  # on the hosts, 20 s before its switch
    cart = deploy("cart", "v2")
    assert wait_final(shop) == "COMPLETED"
    assert wait_final(cart) == "COMPLETED"

    # each worker took one (a worker takes one run at a time here), and they overlapped
    assert {worker_of(stack, shop), worker_of(stack, cart)} == set(stack.worker_names())
    (shop_release,) = releases_of_run(ledger_engine_of, shop)
    (cart_release,) = releases_of_run(ledger_engine_of, cart)
    for release in (shop_release, cart_release):
        assert release.status == ReleaseStatus.succeeded
        assert release.started_at is not None and release.finished_at is not None
    assert shop_release.started_at < cart_release.finished_at  # type: ignore[operator]
    assert cart_release.started_at < shop_release.finished_at  # type: ignore[operator]
    for host in fleet:
        assert (host.root / "current" / "index.php").read_text() == "<?php echo 'v1';\n"
        assert_complete(host)
        cart_current = fleet.base_dir / host.name / "cart" / "current" / "index.php"
        assert cart_current.read_text() == "<?php echo 'v2';\n"


def test_two_releases_of_one_app_never_overlap_across_workers(
    stack: ProcessStack, clean_ssh_fleet: SshdFleet, repo: Repo, ledger_engine_of: Engine
) -> None:
    fleet = clean_ssh_fleet
    write_apps(stack, fleet, repo, hold="30")

    # refused: the second run, on the other worker, finds the lease held and does not run
    first = deploy("shop", "v1")
    holds_lease(ledger_engine_of, "shop", first)  # on the hosts, 30 s before its switch
    second = deploy("shop", "v2")
    states = {first: wait_final(first), second: wait_final(second)}
    assert sorted(states.values()) == ["CANCELLED", "COMPLETED"], states
    assert {worker_of(stack, first), worker_of(stack, second)} == set(stack.worker_names())
    ran = next(r for r, s in states.items() if s == "COMPLETED")
    refused = next(r for r, s in states.items() if s == "CANCELLED")
    (done,) = releases_of_run(ledger_engine_of, ran)
    (not_run,) = releases_of_run(ledger_engine_of, refused)
    assert done.status == ReleaseStatus.succeeded
    assert not_run.status == ReleaseStatus.cancelled
    assert not_run.summary["result"] == "not run"
    assert ran in not_run.summary["reason"]  # it names the run that held the lease
    for host in fleet:
        assert_complete(host)

    # waiting: both run, one after the other
    write_apps(stack, fleet, repo, hold="4")
    third, fourth = deploy("shop", "v2", lock_wait_s=120), deploy("shop", "v3", lock_wait_s=120)
    assert wait_final(third) == "COMPLETED"
    assert wait_final(fourth) == "COMPLETED"
    assert {worker_of(stack, third), worker_of(stack, fourth)} == set(stack.worker_names())
    (a,) = releases_of_run(ledger_engine_of, third)
    (b,) = releases_of_run(ledger_engine_of, fourth)
    earlier, later = sorted((a, b), key=lambda r: r.started_at)  # type: ignore[arg-type,return-value]
    assert earlier.status == later.status == ReleaseStatus.succeeded
    assert earlier.finished_at <= later.started_at  # type: ignore[operator]
    for host in fleet:
        assert (host.root / "current" / "index.php").read_text() == (
            f"<?php echo '{later.version}';\n"
        )
        assert_complete(host)


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def run_processes(run_id: str) -> list[int]:
    """Processes of this machine started for flow run ``run_id`` (its id is in their
    environment: the run's process and the ssh it started)."""
    wanted = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def heartbeats(stack: ProcessStack, run_id: str) -> int:
    """How many heartbeat events of the run the API has stored (the services process
    persists what the API server publishes to Redis)."""
    answer = httpx.post(
        f"{stack.api_url}/events/filter",
        json={
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "resource": {"id": [f"prefect.flow-run.{run_id}"]},
            },
            "limit": 10,
        },
        auth=httpx.BasicAuth(*stack.auth_string.split(":", 1)),
        timeout=10,
    )
    answer.raise_for_status()
    return len(answer.json()["events"])


def automation_names(stack: ProcessStack) -> set[str]:
    from prefect.client.orchestration import PrefectClient

    async def read() -> set[str]:
        async with PrefectClient(api=stack.api_url, auth_string=stack.auth_string) as client:
            return {a.name for a in await client.read_automations()}

    return asyncio.run(read())


def watch_heartbeats_of(stack: ProcessStack, run_id: str, window_s: float) -> None:
    """The platform's zombie automation with a window this test can wait out, for one run."""
    from prefect.client.orchestration import PrefectClient

    automation = zombie_automation(
        window_s, name=f"test: crash {run_id}", runs=f"prefect.flow-run.{run_id}"
    )

    async def create() -> None:
        async with PrefectClient(api=stack.api_url, auth_string=stack.auth_string) as client:
            await client.create_automation(automation)

    asyncio.run(create())


def test_a_killed_worker_s_release_ends_crashed_and_the_next_completes(
    stack: ProcessStack, clean_ssh_fleet: SshdFleet, repo: Repo, ledger_engine_of: Engine
) -> None:
    fleet = clean_ssh_fleet
    engine = ledger_engine_of
    # the stack's reconcile step installed Prefect's heartbeat automation (a 9-minute window)
    assert ZOMBIE_AUTOMATION in automation_names(stack)
    write_apps(stack, fleet, repo, hold="300")  # the run waits on the hosts, lease held
    run = deploy("shop", "v1")
    # heartbeats every 30 s (the stack's PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Prefect's least):
    # a live run is never 45 s without one
    watch_heartbeats_of(stack, run, window_s=45)
    wait_for(lambda: releases_of_run(engine, run), "the run's release")
    wait_for(
        lambda: (lock := current_lock(engine, "shop", "test")) and lock.flow_run_id == run,
        "the run to take the lease",
    )
    wait_for(lambda: heartbeats(stack, run) >= 2, "two heartbeats of the run", 120)

    worker = worker_of(stack, run)
    assert worker in stack.worker_names()
    victims = run_processes(run)
    assert victims, "no process of the run found"
    stack.stop_process(worker, signal.SIGKILL)  # the worker and its fork server
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)  # an OOM kill of the run's process and its ssh
        except ProcessLookupError:
            pass

    # nobody is left to report the run: its heartbeats stop and Prefect crashes it
    wait_for(lambda: read_run(run).final, "Prefect to mark the run ended", 240)
    assert read_run(run).state_type == "CRASHED"
    stack.start_worker(worker)

    write_apps(stack, fleet, repo, hold="0")
    retried = deploy("shop", "v2")
    assert wait_final(retried) == "COMPLETED"
    (dead,) = releases_of_run(engine, run)
    assert dead.status == ReleaseStatus.interrupted
    assert current_lock(engine, "shop", "test") is None
    for host in fleet:
        assert (host.root / "current" / "index.php").read_text() == "<?php echo 'v2';\n"
        assert_complete(host)


def test_server_and_postgres_restarted_during_a_suspended_approval(
    stack: ProcessStack, clean_ssh_fleet: SshdFleet, repo: Repo, ledger_engine_of: Engine
) -> None:
    fleet = clean_ssh_fleet
    engine = ledger_engine_of
    write_apps(stack, fleet, repo, hold="0")
    inventory = yaml.safe_load(stack.inventory.read_text())
    inventory["apps"]["shop"]["environments"]["test"]["approval"] = {
        "required": 1,
        "role": "MASTER",
        "unattributed": "one_approver",
    }
    stack.inventory.write_text(yaml.safe_dump(inventory))
    service.create_user(engine, "rs-lead")
    service.grant_role(engine, "rs-lead", "MASTER", space="default")
    token = service.create_token(engine, "rs-lead")

    run = deploy("shop", "v3")
    wait_for(lambda: read_run(run).state_name == "Suspended", "the gate to suspend", 240)
    (waiting,) = releases_of_run(engine, run)
    assert waiting.status == ReleaseStatus.awaiting_approval

    # the database under Prefect and the ledger, then the API server, go down and come back
    stack.restart_postgres()
    stack.restart_server()
    assert read_run(run).state_name == "Suspended"

    answer = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approve", run, "--wait", "240"],
        env=stack.client_env() | {"QUAYSIDE_TOKEN": token},
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stdout + answer.stderr
    try:
        final = wait_final(run)
    except AssertionError:  # not final in time
        final = "not final"
    if final != "COMPLETED":  # which step lost it: the wake, a worker, or the gate
        status = read_run(run)
        raise AssertionError(
            f"run {run} is {status.state_name} ({status.message}); the CLI said: "
            f"{answer.stdout.strip()}; states: {states_of(stack, run)}"
        )
    (done,) = releases_of_run(engine, run)
    assert done.status == ReleaseStatus.succeeded
    for host in fleet:
        assert (host.root / "current" / "index.php").read_text() == "<?php echo 'v3';\n"
        assert_complete(host)


SUBMITTING = re.compile(r"Worker '(?P<worker>[^']+)' submitting flow run")
ABORTED = "Aborted submission of flow run"


def run_log_lines(stack: ProcessStack, run_id: str) -> list[str]:
    """The run's log messages in Prefect (the workers' submission lines are among them)."""
    answer = httpx.post(
        f"{stack.api_url}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200},
        auth=httpx.BasicAuth(*stack.auth_string.split(":", 1)),
        timeout=10,
    )
    answer.raise_for_status()
    return [str(entry["message"]) for entry in answer.json()]


def states_of(stack: ProcessStack, run_id: str) -> list[tuple[str, str]]:
    """Every state the run went through, oldest first: ``(type, name)``."""
    from prefect.client.orchestration import PrefectClient

    async def read() -> list[tuple[str, str]]:
        async with PrefectClient(api=stack.api_url, auth_string=stack.auth_string) as client:
            states = await client.read_flow_run_states(UUID(run_id))
            return [(s.type.value, s.name or "") for s in sorted(states, key=lambda s: s.timestamp)]

    return asyncio.run(read())


def schedule_deploys(
    stack: ProcessStack, token: str, slots: list[tuple[str, datetime]]
) -> dict[str, tuple[str, datetime]]:
    """``quayside deploy shop test REF --at AT`` with a user's token for each ``(REF, AT)``,
    all at once (each needs AT at least 5 s ahead when it reads it); run id -> ``(REF, AT)``."""
    cli = [sys.executable, "-m", "quayside.cli.main", "deploy", "shop", "test"]
    commands = {
        (ref, at): subprocess.Popen(
            [*cli, ref, "--at", at.isoformat(), "--wait-lock", "120"],
            env=stack.client_env() | {"QUAYSIDE_TOKEN": token},
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for ref, at in slots
    }
    runs = {}
    for slot, command in commands.items():
        output, _ = command.communicate(timeout=120)
        assert command.returncode == 0, output
        found = re.search(r"run id: (\S+)", output)
        assert found, output
        runs[found[1]] = slot
    return runs


def test_a_scheduled_release_starts_exactly_once_across_workers(
    stack: ProcessStack, clean_ssh_fleet: SshdFleet, repo: Repo, ledger_engine_of: Engine
) -> None:
    fleet = clean_ssh_fleet
    engine = ledger_engine_of
    write_apps(stack, fleet, repo, hold="3")
    service.create_user(engine, "sched-dev")
    service.grant_role(engine, "sched-dev", "DEVELOPER", space="default")
    token = service.create_token(engine, "sched-dev")

    # both workers frozen while two slots 4 s apart are scheduled, then woken together when
    # the first falls due: each one's next poll finds both slots due (prefetch 5 s) and both
    # go for the first; Prefect must let exactly one of them start it
    first_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    for name in stack.worker_names():
        stack.pause_process(name)
    try:
        slots = schedule_deploys(
            stack, token, [("v1", first_at), ("v2", first_at + timedelta(seconds=4))]
        )
        assert len(slots) == 2
        for run in slots:
            assert read_run(run).state_type == "SCHEDULED"
        time.sleep(max(0.0, (first_at - datetime.now(UTC)).total_seconds()))
    finally:
        for name in stack.worker_names():
            stack.resume_process(name)

    finished: dict[datetime, str] = {}
    for run, (ref, at) in slots.items():
        assert wait_final(run) == "COMPLETED", read_run(run).message
        # one start: Prefect took one claim ("Pending"; the worker's "Submitting" follows it)
        # and the run went Running once
        states = states_of(stack, run)
        assert states.count(("PENDING", "Pending")) == 1, states
        assert [t for t, _ in states].count("RUNNING") == 1, states
        # the run checked its submitter again when it started, once, and released once
        submission = submission_of_run(engine, run)
        assert submission is not None and submission.principal == "sched-dev"
        assert submission.status == SubmissionStatus.started
        (release,) = releases_of_run(engine, run)
        assert release.status == ReleaseStatus.succeeded and release.version == ref
        assert release.started_at is not None and release.finished_at is not None
        assert release.started_at >= at  # not before its slot
        finished[release.finished_at] = ref

    # each slot was started by one of the stack's workers; which one depends on their polls
    # (one worker's poll may find both slots due within its prefetch and take both - seen in
    # CI once the runs started faster; exactly-once is what the claims below check)
    assert {worker_of(stack, run) for run in slots} <= set(stack.worker_names())

    def claims_settled() -> dict[str, tuple[set[str], int]]:
        """Per run: the workers that tried to start it, and how many were refused."""
        found = {}
        for run in slots:
            lines = run_log_lines(stack, run)
            workers = {m["worker"] for line in lines if (m := SUBMITTING.search(line))}
            aborted = sum(ABORTED in line for line in lines)
            if worker_of(stack, run) not in workers or len(workers) - 1 != aborted:
                return {}
            found[run] = (workers, aborted)
        return found

    # every claim but the one that started the run was refused (whether both workers raced
    # for a slot depends on their polls; a second start would show as a claim not refused)
    wait_for(claims_settled, "the workers' submission lines in the runs' logs", 60)

    # the slots' releases may finish in either order (the second waits for the lease if the
    # first's process was slow to start); the one that finished last is served
    last = finished[max(finished)]
    for host in fleet:
        assert len(release_ids(host)) == 2  # one release directory per slot
        assert (host.root / "current" / "index.php").read_text() == f"<?php echo '{last}';\n"
        assert_complete(host)


def test_the_services_health_check_names_a_stopped_or_dead_services_process(
    stack: ProcessStack,
) -> None:
    healthy = stack.healthcheck("prefect-services")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.startswith("healthy: Prefect's background services")

    def unhealthy() -> str:
        check = stack.healthcheck("prefect-services", ["--timeout", "8"])
        assert check.returncode == 1, check.stdout + check.stderr
        assert "prefect-services" in check.stderr and "did not persist" in check.stderr
        assert "next: " in check.stderr  # what to do
        return check.stderr

    stack.pause_process("prefect-services")  # alive but doing nothing: wedged
    try:
        unhealthy()
    finally:
        stack.resume_process("prefect-services")
    resumed = stack.healthcheck("prefect-services")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    stack.stop_process("prefect-services", signal.SIGKILL)
    unhealthy()
    stack.start_service("prefect-services")
    stack.wait_services_healthy(180)
    assert stack.healthcheck("prefect-services").returncode == 0
