"""The floor of any Quayside flow run here: flows that do nothing, called in-process
against the same Prefect server the release flows use, and one with a no-op task per host
(what per-host task runs would cost, which is why the release flows run a group of hosts in
one task run). Context for the ratios, not a tool."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any


def empty_flow_runs(repeat: int, hosts: int) -> dict[str, list[float]]:
    """Wall seconds of flows that do nothing, called the same way: declared ``async`` (as
    Quayside's flows are) and plain ``def``; and an async flow whose body submits one
    no-op task per host, as the release flows do: the floor of any flow run here and the
    Prefect cost of per-host tasks."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import wait
    from prefect.task_runners import ThreadPoolTaskRunner

    from quayside.tasks.sync_body import run_sync_body

    @flow(name="bench-empty-async")
    async def empty_async() -> None:
        return None

    @flow(name="bench-empty-sync")
    def empty_sync() -> None:
        return None

    @task(name="bench-noop", cache_policy=NO_CACHE)
    def noop(host: str) -> str:
        return host

    def submit_noops(count: int) -> None:
        wait([noop.submit(f"host-{i}") for i in range(count)])

    @flow(name="bench-noop-tasks", task_runner=ThreadPoolTaskRunner(max_workers=50))  # type: ignore[arg-type]
    async def noop_tasks(count: int) -> None:
        await run_sync_body(submit_noops, count=count)

    out: dict[str, list[float]] = {"async": [], "sync": [], "tasks": []}
    # the empty flows first: right after a flow with 20 task runs the server is still
    # recording them, and the next flow run measures that too
    runs: list[tuple[str, Callable[[], Any]]] = [
        ("async", lambda: asyncio.run(empty_async())),
        ("sync", empty_sync),
        ("tasks", lambda: asyncio.run(noop_tasks(hosts))),
    ]
    for kind, call in runs:
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            out[kind].append(round(time.perf_counter() - started, 3))
    return out


def empty_flow_figures(runs: dict[str, list[float]]) -> dict[str, float | None]:
    """Medians of the empty-flow runs, async (Quayside's flows) and sync."""
    return {
        "prefect_empty_flow_s": statistics.median(runs["async"]) if runs["async"] else None,
        "prefect_empty_sync_flow_s": statistics.median(runs["sync"]) if runs["sync"] else None,
        "prefect_flow_noop_task_per_host_s": (
            statistics.median(runs["tasks"]) if runs.get("tasks") else None
        ),
    }
