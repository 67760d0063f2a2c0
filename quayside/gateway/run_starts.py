"""How many run starts a gateway process works on at once.

Starting a run costs the Prefect API a create and a state change and the ledger a submission
record. Without a bound, a burst -- a script submitting 50 tasks, a push of many tags, a hook
storm -- takes every thread of the gateway's pool, so ``/health``, ``/api/releases`` and the
pages wait behind it, and sends every create to the Prefect API at once, where the console's
reads wait behind them (measured: 50 submissions at once held the UI's runs-page read up to
2 s and ``/api/releases`` up to 8 s).

A request that starts runs takes a slot once it is authenticated and checked
(:func:`start_in_turn`: plan then start - a refused request, malformed, unknown or not
allowed, is answered at once and never waits for a turn). It waits for one in the event
loop, holding no thread, first come first served:

- the task API, ``/api/runs``, chat and the publish page wait at most ``wait_s`` seconds,
  then are refused (503 with ``Retry-After``; chat replies that it is busy) before anything
  is started or recorded; the same request sent again starts its run once;
- the hooks wait as long as it takes: their senders (GitLab, ``infra/hooks/post-receive``)
  never send a delivery again, so a refused tag would never deploy. A sender that stops
  waiting sees a timeout; its tag still deploys when its turn comes.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from quayside.gateway.errors import ServiceUnavailable

__all__ = [
    "RunStartSlots",
    "RunStartsBusy",
    "slots_of",
    "start_in_turn",
]

T = TypeVar("T")

#: seconds a client is told to wait before sending a refused request again
RETRY_AFTER_S = 5
#: what an API client does with a refusal
API_HINT = (
    f"send the same request again in {RETRY_AFTER_S} s: with the same Idempotency-Key it "
    "starts its run once"
)


class RunStartsBusy(ServiceUnavailable):
    """No run-start slot came free within the wait (503 with ``Retry-After``)."""

    retry_after_s = RETRY_AFTER_S


class RunStartSlots:
    """At most ``limit`` run starts at once in this process; a start waits at most ``wait_s``
    for a slot unless it is told to wait as long as it takes."""

    def __init__(self, limit: int, wait_s: float) -> None:
        if limit < 1 or not wait_s > 0:
            raise ValueError("limit must be at least 1 and wait_s positive")
        self.limit = limit
        self.wait_s = wait_s
        self._slots = anyio.Semaphore(limit, max_value=limit)

    @property
    def free(self) -> int:
        """Slots nobody holds now."""
        return self._slots.value

    @property
    def waiting(self) -> int:
        """Starts waiting for a slot now."""
        return self._slots.statistics().tasks_waiting

    @asynccontextmanager
    async def slot(self, *, deadline: bool = True, hint: str = API_HINT) -> AsyncIterator[None]:
        """Hold one slot for the block.

        Args:
            deadline: give up after ``wait_s`` (False: wait as long as it takes).
            hint: what the refused caller should do (the error's hint).

        Raises:
            RunStartsBusy: no slot came free within ``wait_s``.
        """
        acquired = False
        with anyio.move_on_after(self.wait_s if deadline else None):
            await self._slots.acquire()
            acquired = True
        if not acquired:
            raise RunStartsBusy(
                f"the gateway is busy starting other runs ({self.limit} at a time) and this "
                f"one's turn did not come within {math.ceil(self.wait_s)} s; nothing was "
                "started or recorded for it",
                hint=hint,
            )
        try:
            yield
        finally:
            self._slots.release()


def slots_of(request: Request) -> RunStartSlots:
    """The app's run-start slots (``app.state.run_starts``)."""
    slots: RunStartSlots = request.app.state.run_starts
    return slots


async def start_in_turn(
    request: Request, plan: Callable[[], Callable[[], T]], *, deadline: bool = True
) -> T:
    """Plan then start, for a route that starts runs: ``plan`` (in the thread pool) checks the
    request - every 4xx is raised there, holding no slot - and returns the start, which runs
    in the thread pool once this request holds a slot (waiting at most ``wait_s``, or as long
    as it takes with ``deadline=False``, for the hooks).

    Raises:
        RunStartsBusy: no slot came free within ``wait_s``; nothing was started.
    """
    start = await run_in_threadpool(plan)
    async with slots_of(request).slot(deadline=deadline):
        return await run_in_threadpool(start)
