"""A release flow sends its queued log lines when its body ends, and says so on the run
(:mod:`quayside.runs.log_marker`), so ``quayside deploy`` returns as soon as the run ends."""

from __future__ import annotations

import asyncio
import logging

from prefect.context import FlowRunContext

from quayside.runs.log_marker import LABEL, label_value

logger = logging.getLogger("quayside.logs")
#: the longest the run's end waits for its queued lines to go (then it is not marked, and the
#: follower waits for the process's own flush, as without the mark)
FLUSH_TIMEOUT_S = 5.0


async def send_logs_and_mark(context: FlowRunContext) -> bool:
    """Send the run's queued log lines to the API and label the run (one request each);
    False if either failed (the follower then waits for the run's process to end, as
    without this). Never raises: the release's outcome does not depend on it."""
    from prefect.logging.handlers import APILogHandler

    run = context.flow_run
    if run is None:
        return False
    try:
        flushing = APILogHandler.aflush()
        if flushing is not None:  # at most FLUSH_TIMEOUT_S: an API that does not answer
            await asyncio.wait_for(flushing, FLUSH_TIMEOUT_S)
        labels: dict[str, bool | int | float | str] = {LABEL: label_value(run.run_count)}
        labelling = context.client.update_flow_run_labels(run.id, labels)
        if labelling is not None:  # the async client (a flow run's context holds one)
            await labelling
    except Exception as e:  # noqa: BLE001 - a timeout too: only the follower waits on it
        logger.debug("log lines of run %s not marked sent: %r", run.id, e)
        return False
    return True
