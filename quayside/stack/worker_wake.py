"""Start a scheduled flow run as soon as it is created, instead of at the worker's next poll.

Prefect's process worker asks the API for runs every ``PREFECT_WORKER_QUERY_SECONDS`` (1 s in
``quayside up``): a run created just after a poll waits for the next one, 0.5 s on average.
The Prefect server announces each new run on its event stream (``prefect.flow-run.Scheduled``,
related to the run's work pool) within milliseconds of creating it, so the worker subscribes
to that stream -- Prefect's own websocket, through Prefect's own client, with the API's auth
string -- and polls at once when a run of its pool is announced. The regular poll keeps
running: a lost event or a dropped stream only costs the old latency, never a run.

Polling twice at once is safe: the worker skips runs it is already submitting, and the server
lets only one worker move a run from Scheduled to Pending.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.events.schemas.events import Event
    from prefect.workers.base import BaseWorker

#: the event Prefect's server emits when a flow run enters the Scheduled state
SCHEDULED_EVENT = "prefect.flow-run.Scheduled"
#: how long to wait before subscribing again after the stream failed
RESUBSCRIBE_S = 5.0

logger = logging.getLogger("quayside.worker.wake")


def for_pool(event: Event, pool: str) -> bool:
    """Whether ``event`` is about a run of the work pool named ``pool``."""
    return any(
        related.role == "work-pool" and related.get("prefect.resource.name") == pool
        for related in event.related
    )


async def wake_on_scheduled(worker: BaseWorker, pool: str, due: asyncio.Event) -> None:
    """Poll ``worker`` when runs of ``pool`` are scheduled, and each time something else sets
    ``due`` (a freed slot: :mod:`quayside.stack.worker_polls`), until cancelled: announcements
    that arrive while a poll is under way are answered by one poll after it (a burst of 50 runs
    costs a few polls, not 50). Failures of the stream are logged and the subscription is made
    again after :data:`RESUBSCRIBE_S`."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    wanted = EventFilter(event=EventNameFilter(name=[SCHEDULED_EVENT]))
    polling = asyncio.create_task(_poll_when_due(worker, due))
    try:
        while True:
            try:
                async with get_events_subscriber(filter=wanted) as events:
                    async for event in events:
                        if for_pool(event, pool):
                            due.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the poll still runs; say why the fast path is off for now
                logger.warning("event stream for early starts failed (%s); retrying", e)
            await asyncio.sleep(RESUBSCRIBE_S)
    finally:
        polling.cancel()


async def _poll_when_due(worker: BaseWorker, due: asyncio.Event) -> None:
    """Each time ``due`` is set: clear it and poll once (what arrives meanwhile sets it again)."""
    while True:
        await due.wait()
        due.clear()
        try:
            await worker.get_and_submit_flow_runs()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the worker's own poll still runs
            logger.warning("early start poll failed (%s)", e)
