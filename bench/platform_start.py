"""Platform start: ``quayside up`` (what ``make up`` runs once the environment is installed)
from process start to "Quayside is up" with the Prefect API and the gateway answering.

One result, ``platform_start``: ``cold_s`` (a fresh data directory and no inventory: the first
run as a newcomer meets it — Prefect's database migrated, the demo written, the deployments
registered) and ``warm_s`` (the same data directory started again), medians of ``--repeat``
pairs. Floor, for comparison: Prefect's own ``prefect server start`` on a fresh
``PREFECT_HOME`` to ``/api/health`` (what any Prefect-based platform pays first).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.harness import Options, Timing, ToolResult, log, make_entry, reproduce_command

NAME = "platform_start"
COMMAND = reproduce_command(NAME)
RESULTS = ("platform_start",)
GOAL_WARM_S = 15.0
START_TIMEOUT_S = 300.0


def _up_once(home: Path, inventory: Path) -> float:
    from testbed.platform import Platform

    running = Platform(home, inventory)
    started = time.perf_counter()
    try:
        running.start(timeout=START_TIMEOUT_S)
        return time.perf_counter() - started
    finally:
        running.stop()


def _prefect_server_once(work: Path) -> float:
    from testbed.platform import free_port

    port = free_port()
    env = dict(
        os.environ,
        PREFECT_HOME=str(work / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_PORT=str(port),
    )
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"prefect server start exited with {process.returncode}")
            time.sleep(0.2)
        raise RuntimeError("prefect server start did not answer in time")
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Start the platform cold then warm ``options.repeat`` times, and Prefect's server alone."""
    repeat = max(1, options.repeat)
    cold: list[float] = []
    warm: list[float] = []
    floor: list[float] = []
    for i in range(repeat):
        with tempfile.TemporaryDirectory(prefix="qs-bench-start-") as scratch:
            work = Path(scratch)
            home = work / "home"
            inventory = work / "quayside.yaml"  # absent: the first start writes the demo
            cold.append(_up_once(home, inventory))
            warm.append(_up_once(home, inventory))
            floor.append(_prefect_server_once(work))
        log(
            f"start {i + 1}/{repeat}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s, "
            f"prefect server alone {floor[-1]:.1f} s"
        )
    tools = [
        ToolResult(
            "quayside",
            "quayside up, warm (same data directory again)",
            "from process start to 'Quayside is up' with the Prefect API and gateway healthy",
            Timing(statistics.median(warm), warm),
        ),
        ToolResult(
            "prefect_server",
            "prefect server start alone, fresh PREFECT_HOME",
            "from process start to /api/health answering (no worker, no gateway, no deployments)",
            Timing(statistics.median(floor), floor),
        ),
    ]
    entry = make_entry(
        tools,
        title="Platform start: quayside up to healthy",
        description="`quayside up` on a fresh data directory with no inventory (cold: Prefect's "
        "database migrated, the demo written, deployments registered) and on the same data "
        "directory again (warm), to 'Quayside is up' with the Prefect API and the gateway "
        "answering; Prefect's own server alone on a fresh PREFECT_HOME as the floor.",
        command=COMMAND,
        repeat=repeat,
        extra={
            "cold_s": round(statistics.median(cold), 3),
            "cold_runs_s": [round(v, 3) for v in cold],
            "warm_s": round(statistics.median(warm), 3),
            "warm_runs_s": [round(v, 3) for v in warm],
            "goal_warm_s": GOAL_WARM_S,
        },
        notes=[
            f"Goal (issue 16): a warm start under {GOAL_WARM_S:.0f} s. The uv environment is "
            "installed before timing (make up's `uv sync` is a no-op then)."
        ],
    )
    return {"platform_start": entry}
