"""How many run starts the gateway works on at once.

Starting a run costs the Prefect API a create and a state change and the ledger a submission
record. Without a bound, a burst -- a script submitting 50 tasks, a push of many tags, a hook
storm -- takes every thread of the gateway's pool, so ``/health``, ``/api/releases`` and the
pages wait behind it, and sends every create to the Prefect API at once, where the console's
reads wait behind them (measured: 50 submissions at once held the UI's runs-page read up to
2 s and ``/api/releases`` up to 8 s).

A request that starts runs takes a slot first. It waits for one in the event loop, holding
no thread, for at most ``wait_s`` seconds; then it is answered 503 with ``Retry-After``,
before anything is recorded, and the same request sent again with its ``Idempotency-Key``
starts the run once.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.requests import Request

from quayside.gateway.errors import ServiceUnavailable

__all__ = ["RunStartSlots", "RunStartsBusy", "run_start_slot", "slots_of"]

#: seconds a client is told to wait before sending a refused request again
RETRY_AFTER_S = 5


class RunStartsBusy(ServiceUnavailable):
    """Every run-start slot stayed taken for the whole wait (503 with ``Retry-After``)."""

    retry_after_s = RETRY_AFTER_S


class RunStartSlots:
    """At most ``limit`` run starts at once; a start waits at most ``wait_s`` for a slot."""

    def __init__(self, limit: int, wait_s: float) -> None:
        if limit < 1 or not wait_s > 0:
            raise ValueError("limit must be at least 1 and wait_s positive")
        self.limit = limit
        self.wait_s = wait_s
        self._slots = anyio.Semaphore(limit)

    @property
    def free(self) -> int:
        """Slots nobody holds now."""
        return self._slots.value

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block.

        Raises:
            RunStartsBusy: no slot came free within ``wait_s``.
        """
        acquired = False
        with anyio.move_on_after(self.wait_s):
            await self._slots.acquire()
            acquired = True
        if not acquired:
            raise RunStartsBusy(
                f"the gateway is starting {self.limit} runs already and none finished within "
                f"{math.ceil(self.wait_s)} s; nothing was started or recorded for this request",
                hint=f"send the same request again in {RETRY_AFTER_S} s: with the same "
                "Idempotency-Key (or the same hook delivery) it starts the run once",
            )
        try:
            yield
        finally:
            self._slots.release()


def slots_of(request: Request) -> RunStartSlots:
    """The app's run-start slots (``app.state.run_starts``)."""
    slots: RunStartSlots = request.app.state.run_starts
    return slots


async def run_start_slot(request: Request) -> AsyncIterator[None]:
    """FastAPI dependency of a route that starts runs: the route's work holds a slot."""
    async with slots_of(request).slot():
        yield
