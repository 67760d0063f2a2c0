"""A full worker asks the API for nothing, and asks at once when a slot frees.

Prefect's worker polls for scheduled runs every ``PREFECT_WORKER_QUERY_SECONDS`` (1 s here)
and on every announced run (:mod:`quayside.stack.worker_wake`), also when all of its
``--limit`` slots are taken -- then it takes none of what it read. Each poll costs the API a
query and a work-queue update; with 50 runs queued behind 10 slots, those wasted polls were
a tenth of the API server's CPU, on the same core as the console's reads.

Here a worker with no free slot skips the API and counts the skipped poll as a poll
(Prefect's "has not polled" check stays quiet): it still asks at least every
:data:`FULL_POLL_S` seconds, so its work queue keeps its Ready status. While it is full, an
API outage shows in its heartbeats, not in its poll loop. When a
run ends and frees a slot, the worker polls at once instead of at its next tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from prefect.workers.base import BaseWorker

#: seconds a full worker goes without asking the API (Prefect marks a work queue not ready
#: after 60 s without a poll)
FULL_POLL_S = 10.0


def poll_when_free(
    worker: BaseWorker[Any, Any, Any],
    due: asyncio.Event,
    *,
    full_poll_s: float = FULL_POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Make ``worker`` skip its polls while every slot is taken (but ask at least every
    ``full_poll_s`` seconds), and set ``due`` -- the early-start poll's signal -- whenever
    it frees a slot. Call it before the worker starts, in its event loop."""
    from prefect.types._datetime import now

    poll: Callable[[], Awaitable[list[Any]]] = worker.get_and_submit_flow_runs
    release: Callable[[UUID], None] = worker._release_limit_slot
    asked_at = clock()

    async def get_and_submit_flow_runs() -> list[Any]:
        nonlocal asked_at
        limiter = worker._limiter
        if limiter is not None and limiter.available_tokens < 1:
            if clock() - asked_at < full_poll_s:
                worker._last_polled_time = now("UTC")
                return []
        asked_at = clock()
        return await poll()

    def release_limit_slot(flow_run_id: UUID) -> None:
        release(flow_run_id)
        due.set()

    # on the instance: a subclass would replace the "process" type in Prefect's registry
    setattr(worker, "get_and_submit_flow_runs", get_and_submit_flow_runs)  # noqa: B010
    setattr(worker, "_release_limit_slot", release_limit_slot)  # noqa: B010
