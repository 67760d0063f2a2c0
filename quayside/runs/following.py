"""Following a flow run: its log lines as they arrive and its state until it is final and
its last lines are in (the CLI's ``deploy``/``rollback``/``approve`` follow runs this way)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from quayside.errors import QuaysideError
from quayside.runs.client import RunStatus, _read, _uuid, ui_url_for
from quayside.runs.prefect_http import PrefectHTTP


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    level: int
    message: str


#: Prefect ships a run's logs in batches (every ~2 s) and flushes the last batch as the run
#: process exits, so logs can arrive after newer ones and after the final state.
LOG_LATENESS = timedelta(seconds=15)
LOG_PAGE = 200
#: after the final state, read until the engine's own "Finished in state" line for the flow
#: run has arrived (it is logged after the final state and shipped when the run's process
#: ends: :func:`quayside.stack.forkserver.flush_prefect`), every END_POLL_S, for at most this
#: long (a crashed run, or one logging below INFO, has no such line)
END_GRACE_S = 0.8
END_POLL_S = 0.05
#: while the run goes on, its logs are read on every LOG_EVERY-th state poll: the state is
#: what says a run ended (one small read), the logs only need to keep the screen current
#: (they arrive in ~2 s batches anyway)
LOG_EVERY = 5


def follow_run(
    run_id: str,
    *,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
    on_state: Callable[[RunStatus], None] | None = None,
    log_every: int = LOG_EVERY,
) -> Iterator[LogLine]:
    """Yield the run's log lines as they appear until it reaches a final state and its last
    logs are in; ``on_state`` is called on every state change (the final state included,
    before this returns). Paused and suspended runs are followed too (they wait for approval).

    The state is read every ``poll_s`` and the logs on every ``log_every``-th read (and on
    the first): a short ``poll_s`` notices the end soon without reading the logs as often.
    Once the run is final, the logs are read every :data:`END_POLL_S` until the engine's last
    line for it is in (at most :data:`END_GRACE_S`).

    Logs are read by time window (everything newer than the newest seen, minus a lateness
    margin) and de-duplicated by id, so a late batch is never skipped. One connection serves
    every poll.

    Raises:
        QuaysideError: still not final after ``timeout_s``.
    """
    seen: set[str] = set()
    newest: datetime | None = None
    flow_finished_logged = False
    last_state: tuple[str, str] | None = None
    deadline = time.monotonic() + timeout_s if timeout_s else None
    run_uuid = str(_uuid(run_id))

    def read_logs(api: PrefectHTTP) -> list[LogLine]:
        nonlocal newest, flow_finished_logged
        window: dict[str, Any] = {"flow_run_id": {"any_": [run_uuid]}}
        if newest is not None:
            window["timestamp"] = {"after_": (newest - LOG_LATENESS).isoformat()}
        lines: list[LogLine] = []
        offset = 0
        while True:
            body = {"logs": window, "sort": "TIMESTAMP_ASC", "limit": LOG_PAGE, "offset": offset}
            page = api.call("POST", "/logs/filter", body)
            for log in page:
                if log["id"] in seen:
                    continue
                seen.add(log["id"])
                message = str(log["message"])
                if log.get("task_run_id") is None and message.startswith("Finished in state"):
                    flow_finished_logged = True
                stamp = datetime.fromisoformat(log["timestamp"])
                lines.append(LogLine(stamp, int(log["level"]), message))
                newest = stamp if newest is None else max(newest, stamp)
            if len(page) < LOG_PAGE:
                break
            offset += LOG_PAGE
        lines.sort(key=lambda line: line.timestamp)
        return lines

    ended_at: float | None = None
    reads = 0
    with PrefectHTTP() as api:
        while True:
            if ended_at is None:  # once final, only the last logs are awaited
                status = _read(api, run_id)
            if status.final or reads % max(1, log_every) == 0:
                yield from read_logs(api)
            reads += 1
            if (status.state_type, status.state_name) != last_state:
                last_state = (status.state_type, status.state_name)
                if on_state is not None:
                    on_state(status)
            if status.final:
                ended_at = ended_at or time.monotonic()
                # the engine's last line is in, or the run sent its lines before it ended
                # (read once after the final state: the read above)
                done = flow_finished_logged or status.logs_sent
                if done or time.monotonic() - ended_at > END_GRACE_S:
                    return
            elif deadline is not None and time.monotonic() > deadline:
                raise QuaysideError(
                    f"run {run_id} still {status.state_name} after {timeout_s:.0f}s",
                    hint=f"follow it in the UI: {ui_url_for(run_id)}",
                )
            time.sleep(END_POLL_S if ended_at is not None else poll_s)
