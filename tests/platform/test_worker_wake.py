"""Early starts (quayside.stack.worker_wake): a worker whose next poll is ten minutes away
still starts a run as soon as it is created, because the server announces it on its event
stream. A second worker, on a pool of its own, against the session platform's Prefect API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import PROJECT_DIR
from testbed.platform import Platform

pytestmark = pytest.mark.xdist_group("platform-2")

ENTRYPOINT = "tests/platform/wake_probe_flow.py:wake_probe"
#: how the run imports the flow: by name from the project dir, as Quayside's deployments do
JOB_VARIABLES = {
    "env": {"PREFECT__FLOW_ENTRYPOINT": "tests.platform.wake_probe_flow:wake_probe"},
    "working_dir": str(PROJECT_DIR),
}


def _worker_env(platform: Platform, wake: bool) -> dict[str, str]:
    env = platform.env
    env.update(
        {
            "PREFECT_API_AUTH_STRING": platform.auth_string,
            # the first poll comes at start; the next one ten minutes later
            "PREFECT_WORKER_QUERY_SECONDS": "600",
            "PREFECT_WORKER_PREFETCH_SECONDS": "0",
            # the session platform's fork server owns QUAYSIDE_HOME/run/launcher.sock
            "QUAYSIDE_FORKSERVER": "0",
            "QUAYSIDE_WORKER_WAKE": "1" if wake else "0",
        }
    )
    return env


async def _deploy(platform: Platform, pool: str) -> uuid.UUID:
    from prefect.client.schemas.actions import WorkPoolCreate

    async with platform.client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        flow_id = await client.create_flow_from_name("wake-probe")
        return await client.create_deployment(
            flow_id=flow_id,
            name=pool,
            work_pool_name=pool,
            entrypoint=ENTRYPOINT,
            job_variables=JOB_VARIABLES,
        )


async def _workers(platform: Platform, pool: str) -> list[str]:
    async with platform.client() as client:
        return [w.name for w in await client.read_workers_for_work_pool(pool)]


async def _run_and_wait(platform: Platform, deployment_id: uuid.UUID, wait_s: float) -> str:
    async with platform.client() as client:
        run = await client.create_flow_run_from_deployment(deployment_id)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            state = (await client.read_flow_run(run.id)).state
            if state is not None and state.is_final():
                return state.type.value
            await asyncio.sleep(0.2)
        state = (await client.read_flow_run(run.id)).state
        return state.type.value if state is not None else "NONE"


@pytest.fixture
def started_worker(platform: Platform, tmp_path: Path) -> Iterator[tuple[str, uuid.UUID, Path]]:
    """A worker with early starts on a new pool with a deployment of the probe flow."""
    pool = f"wake-{uuid.uuid4().hex[:8]}"
    deployment_id = asyncio.run(_deploy(platform, pool))
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "quayside.stack.worker", "--pool", pool, "--type", "process",
             "--name", pool],
            env=_worker_env(platform, wake=True), cwd=PROJECT_DIR, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while pool not in asyncio.run(_workers(platform, pool)):
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "worker never registered:\n" + log.read_text()
            time.sleep(0.5)
        time.sleep(2)  # its first poll, made at start, is over: the next is 600 s away
        yield pool, deployment_id, log
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)


def test_a_run_starts_when_created_not_at_the_next_poll(
    platform: Platform, started_worker: tuple[str, uuid.UUID, Path]
) -> None:
    pool, deployment_id, log = started_worker
    # 120 s is far below the worker's 600 s poll: only the announced run can start it
    state = asyncio.run(_run_and_wait(platform, deployment_id, wait_s=120))
    assert state == "COMPLETED", log.read_text()[-3000:]
    # and again: the stream stays subscribed after the first wake
    state = asyncio.run(_run_and_wait(platform, deployment_id, wait_s=120))
    assert state == "COMPLETED", log.read_text()[-3000:]
