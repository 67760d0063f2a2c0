"""The CLI and the run logs against the session's real platform (`quayside up`: Prefect
server, worker with the fork server, gateway): the CLI finds the platform from the settings
`up` uses, and every run's last log lines reach the API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from quayside.runs import read_run, start_run
from testbed.platform import PROJECT_DIR, Platform

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

INVENTORY = "hosts:\n  here: {address: 127.0.0.1, transport: local}\ngroups:\n  demo: [here]\n"


def test_the_cli_finds_its_platform_from_the_settings_of_up(
    platform: Platform, tmp_path: Path
) -> None:
    """QUAYSIDE_HOME and QUAYSIDE_PREFECT_PORT only (no PREFECT_API_URL, no auth string, an
    empty PREFECT_HOME): the CLI asks the platform's API with the data directory's auth
    string, which answers "no flow run"; no ephemeral server, no database of its own."""
    env = {k: v for k, v in platform.env.items() if k not in ("PREFECT_API_URL",)}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["QUAYSIDE_TOKEN"] = "qs_notchecked_beforetherun"
    missing = str(uuid.uuid4())
    done = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approve", missing],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error: no flow run '{missing}'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.db")), list(tmp_path.rglob("*"))


def flow_logs(platform: Platform, run_id: str) -> list[Any]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    async def go() -> list[Any]:
        async with platform.client() as client:
            return list(
                await client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)])),
                    sort=LogSort.TIMESTAMP_ASC,
                    limit=200,
                )
            )

    return asyncio.run(go())


def finished_line(logs: list[Any]) -> bool:
    return any(
        log.task_run_id is None and log.message.startswith("Finished in state Completed")
        for log in logs
    )


def test_every_run_s_last_log_lines_reach_the_api(
    platform: Platform, platform_inventory: Path
) -> None:
    """Runs started from the fork server end with ``os._exit``; before they flushed Prefect's
    log worker, short runs lost their last batch (often every line). Now each run's own lines
    and the engine's last one ("Finished in state Completed()") are in the API once it ends
    (read as soon as the state is final, then for a few seconds at most)."""
    platform_inventory.write_text(INVENTORY)
    waits = []
    for i in range(3):
        word = f"log-check-{i}-{os.getpid()}"
        handle = start_run(
            "hello-release",
            {"group": "demo", "command": ["echo", word], "requested_by": "log-test"},
        )
        deadline = time.monotonic() + 180
        while not read_run(handle.id).final:
            assert time.monotonic() < deadline, f"run {handle.id} did not end"
            time.sleep(0.2)
        assert read_run(handle.id).state_type == "COMPLETED", read_run(handle.id).message
        final_at = time.monotonic()
        logs = flow_logs(platform, handle.id)
        while not finished_line(logs) and time.monotonic() - final_at < 10:
            time.sleep(0.2)
            logs = flow_logs(platform, handle.id)
        waits.append(round(time.monotonic() - final_at, 2))
        messages = [log.message for log in logs]
        assert finished_line(logs), messages
        assert any(f"echo {word} on 1 host(s)" in m for m in messages), messages
        assert f"here stdout: {word}" in messages, messages  # the task's line
    print(f"last line in the API after the final state: {waits} s")


def test_a_run_says_its_lines_are_sent_before_it_ends(
    platform: Platform, platform_inventory: Path
) -> None:
    """A release run sends its queued log lines and labels itself before Prefect records its
    final state, so a follower that sees the state final and the label reads every line of
    the body at once (``quayside deploy`` returns without waiting for the run's process)."""
    platform_inventory.write_text(INVENTORY)
    word = f"sent-check-{os.getpid()}"
    handle = start_run(
        "hello-release",
        {"group": "demo", "command": ["echo", word], "requested_by": "log-test"},
    )
    deadline = time.monotonic() + 180
    status = read_run(handle.id)
    while not status.final:
        assert time.monotonic() < deadline, f"run {handle.id} did not end"
        time.sleep(0.05)
        status = read_run(handle.id)
    messages = [log.message for log in flow_logs(platform, handle.id)]  # read at once
    assert status.state_type == "COMPLETED", status.message
    assert status.logs_sent
    assert f"here stdout: {word}" in messages, messages
    assert any(f"echo {word} on 1 host(s)" in m for m in messages), messages
