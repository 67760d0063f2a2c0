"""A full worker asks the API for nothing, and asks at once when a slot frees
(quayside.stack.worker_polls), on Prefect's own ProcessWorker: only its API read of scheduled
runs is counted instead of sent (the worker is never started)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import anyio
from prefect.types._datetime import now
from prefect.workers.process import ProcessWorker

from quayside.stack.worker_polls import poll_when_free


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def worker_with(limit: int) -> tuple[ProcessWorker, list[int]]:
    """A ProcessWorker as it is after its setup and first sync, whose read of scheduled runs
    counts instead of asking the API."""
    worker = ProcessWorker(work_pool_name="quayside", limit=limit)
    worker._limiter = anyio.CapacityLimiter(limit)
    worker._has_successfully_synced = True
    asked: list[int] = []

    async def scheduled() -> list[Any]:
        asked.append(1)
        return []

    worker._get_scheduled_flow_runs = scheduled  # type: ignore[method-assign]
    return worker, asked


def test_a_full_worker_skips_the_api_but_still_asks_every_ten_seconds() -> None:
    async def scenario() -> None:
        worker, asked = worker_with(1)
        clock = Clock()
        poll_when_free(worker, asyncio.Event(), clock=clock)
        await worker.get_and_submit_flow_runs()
        assert len(asked) == 1  # a free slot: the API is asked
        run = uuid.uuid4()
        assert worker._limiter is not None
        worker._limiter.acquire_on_behalf_of_nowait(run)
        worker._last_polled_time = now("UTC") - timedelta(hours=1)
        clock.now += 1
        for _ in range(5):
            assert await worker.get_and_submit_flow_runs() == []
        assert len(asked) == 1  # full: nothing asked
        # counted as polls: Prefect's "has not polled" check stays quiet
        assert now("UTC") - worker._last_polled_time < timedelta(minutes=1)
        clock.now += 10
        await worker.get_and_submit_flow_runs()
        assert len(asked) == 2  # full for 10 s: asked once, so its queue stays Ready
        await worker.get_and_submit_flow_runs()
        assert len(asked) == 2

    asyncio.run(scenario())


def test_a_freed_slot_makes_the_worker_poll_at_once() -> None:
    async def scenario() -> None:
        worker, asked = worker_with(1)
        due = asyncio.Event()
        clock = Clock()
        poll_when_free(worker, due, clock=clock)
        run = uuid.uuid4()
        assert worker._limiter is not None
        worker._limiter.acquire_on_behalf_of_nowait(run)
        await worker.get_and_submit_flow_runs()
        assert asked == [] and not due.is_set()
        worker._release_limit_slot(run)  # the run ended
        assert due.is_set()  # the early-start poll's signal
        assert worker._limiter.available_tokens == 1  # Prefect's own release happened
        await worker.get_and_submit_flow_runs()
        assert len(asked) == 1

    asyncio.run(scenario())
