"""Platform start: ``quayside up`` (what ``make up`` runs once the environment is installed)
from process start to "Quayside is up" with the Prefect API and the gateway answering.

One result, ``platform_start``: ``first_s`` (the machine's first start: a fresh data directory,
no inventory and no prepared Prefect database yet - Prefect migrates it while the template is
prepared beside it, the demo written, the deployments registered: what a newcomer meets),
``cold_s`` (another fresh data directory on the same machine: its Prefect database copied from
the template) and ``warm_s`` (that data directory started again), medians of ``--repeat``
rounds, each with a cache directory of its own. Floor, for comparison: Prefect's own
``prefect server start`` on a fresh ``PREFECT_HOME`` to ``/api/health`` (what any
Prefect-based platform pays first).
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
PREVIOUS = (
    "Before session 16 (2026-12-05 06:13, same command): cold 19.7 s, warm 12.6 s. What "
    "changed: a new data directory's Prefect database is copied from a template prepared "
    "once per machine and Prefect version (Prefect migrating an empty SQLite file took "
    "about 9 s of the server's start), the gateway starts while the server does, and the "
    "deployments are registered in one event loop instead of one `deploy()` each."
)
START_TIMEOUT_S = 300.0


def _up_once(home: Path, inventory: Path, cache: Path) -> float:
    from testbed.platform import Platform

    running = Platform(home, inventory, extra_env={"QUAYSIDE_CACHE_DIR": str(cache)})
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


def _template_ready(cache: Path, timeout_s: float = 120.0) -> None:
    """Until the first start's background preparation has put the template in ``cache``."""
    deadline = time.monotonic() + timeout_s
    while not list(cache.glob("prefect-*.db")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no Prefect database template in {cache} after {timeout_s:.0f}s")
        time.sleep(0.2)


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Start the platform first, cold then warm ``options.repeat`` times, and Prefect's server
    alone."""
    repeat = max(1, options.repeat)
    first: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    floor: list[float] = []
    for i in range(repeat):
        with tempfile.TemporaryDirectory(prefix="qs-bench-start-") as scratch:
            work = Path(scratch)
            cache = work / "cache"  # this round's machine: no template yet
            first.append(_up_once(work / "first-home", work / "first.yaml", cache))
            _template_ready(cache)  # untimed
            home = work / "home"
            inventory = work / "quayside.yaml"  # absent: the first start writes the demo
            cold.append(_up_once(home, inventory, cache))
            warm.append(_up_once(home, inventory, cache))
            floor.append(_prefect_server_once(work))
        log(
            f"start {i + 1}/{repeat}: first {first[-1]:.1f} s, cold {cold[-1]:.1f} s, "
            f"warm {warm[-1]:.1f} s, prefect server alone {floor[-1]:.1f} s"
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
        description="`quayside up` on a fresh data directory with no inventory: the machine's "
        "first (first: Prefect migrates its database while the machine's template is prepared "
        "beside it, the demo written, deployments registered) and a later one (cold: the "
        "Prefect database copied from the template); then on the same data directory again "
        "(warm), to 'Quayside is up' with the Prefect API and the gateway answering; "
        "Prefect's own server alone on a fresh PREFECT_HOME as the floor.",
        command=COMMAND,
        repeat=repeat,
        extra={
            "first_s": round(statistics.median(first), 3),
            "first_runs_s": [round(v, 3) for v in first],
            "cold_s": round(statistics.median(cold), 3),
            "cold_runs_s": [round(v, 3) for v in cold],
            "warm_s": round(statistics.median(warm), 3),
            "warm_runs_s": [round(v, 3) for v in warm],
            "goal_warm_s": GOAL_WARM_S,
        },
        notes=[
            f"Goal (issue 16): a warm start under {GOAL_WARM_S:.0f} s. The uv environment is "
            "installed before timing (make up's `uv sync` is a no-op then).",
            PREVIOUS,
        ],
    )
    return {"platform_start": entry}
