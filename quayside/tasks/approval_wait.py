"""Waiting for an approval answer inside the run's own process, for a while.

Prefect offers two waits. ``suspend_flow_run`` ends the process; answering schedules the run
again and the worker starts it from the top: 12-14 s from an answer to the gate's verdict
here. ``pause_flow_run`` keeps the process and polls (10 s by default), but its timeout is
final: once it passes, the server refuses to resume the run and fails it, so a pause cannot
be cut short and turned into a suspension.

So the gate first waits here, in the process: :func:`pause_for_answer` puts the run in
Prefect's ``Paused`` state with the answer form (the same ``run_input_keyset`` machinery as
``pause_flow_run``), with a server-side timeout past the request's expiry, and polls the run's
state every ``QUAYSIDE_APPROVAL_POLL_S`` (0.5 s). It returns when the run is resumed (an
answer, taken from Prefect and deleted at once), when the ledger shows a new decision (the
run resumes itself: an answer recorded by the CLI, gateway or chat whose wake-up raced the
pause), or when its window ends (``QUAYSIDE_APPROVAL_PAUSE_S``, 600 s): the run resumes
itself, and the gate suspends it, so no process and no worker slot wait a day. The gate runs
before any deploy lock is taken, so nothing is held while it waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import Abort
from prefect.input import RunInput, keyset_from_paused_state
from prefect.states import Paused, Running
from prefect.utilities.engine import propose_state_sync

from quayside.errors import InputError, QuaysideError

PAUSE_WINDOW_ENV = "QUAYSIDE_APPROVAL_PAUSE_S"
POLL_ENV = "QUAYSIDE_APPROVAL_POLL_S"
DEFAULT_WINDOW_S = 600.0
DEFAULT_POLL_S = 0.5
#: how often the ledger is looked at while paused (answers normally wake the run themselves)
LEDGER_CHECK_S = 2.0
#: the server-side pause timeout runs this much past the window, so the gate (not the server)
#: ends the pause: the server fails a run whose pause timed out instead of resuming it
SERVER_GRACE_S = 120

Ended = Literal["answered", "ledger", "window", "left"]


class ApprovalWaitError(QuaysideError):
    """The run could not be paused for its approval (Prefect refused the state)."""


@dataclass(frozen=True)
class WaitSettings:
    """How long the gate waits in its own process, and how often it looks for an answer."""

    window_s: float
    poll_s: float


def wait_settings(environ: Mapping[str, str] | None = None) -> WaitSettings:
    """The wait settings from ``QUAYSIDE_APPROVAL_PAUSE_S`` (0 = suspend at once) and
    ``QUAYSIDE_APPROVAL_POLL_S`` (0.1 to 60).

    Raises:
        InputError: a value that is not a number in its range, naming the variable.
    """
    env = os.environ if environ is None else environ
    return WaitSettings(
        window_s=_number(env, PAUSE_WINDOW_ENV, DEFAULT_WINDOW_S, 0, 24 * 3600),
        poll_s=_number(env, POLL_ENV, DEFAULT_POLL_S, 0.1, 60),
    )


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails too
        raise InputError(
            f"{name}={raw!r}: expected a number of seconds from {low:g} to {high:g}",
            hint=f"unset it for the default ({default:g})",
        )
    return value


@dataclass(frozen=True)
class PauseOutcome:
    """Why :func:`pause_for_answer` returned.

    Attributes:
        ended: ``answered`` (resumed from outside), ``ledger`` (a new decision in the ledger),
            ``window`` (the in-process window ended) or ``left`` (the run left the paused state
            some other way: cancelled, failed by the server).
        answer: the form's input if one was sent (already deleted from Prefect).
        state: the run's state name when it ended.
    """

    ended: Ended
    answer: dict[str, Any] | None
    state: str


def pause_for_answer(
    *,
    flow_run_id: str,
    key: str,
    form: type[RunInput],
    window_s: float,
    poll_s: float,
    changed: Callable[[], bool],
) -> PauseOutcome:
    """Pause the current flow run with ``form`` as its answer form and wait, in this process,
    at most ``window_s``.

    Args:
        flow_run_id: the current flow run.
        key: the pause key (unique per wait; Prefect records it on the run).
        form: the RunInput class the Prefect UI shows (with its description).
        window_s: how long to wait here.
        poll_s: how often to read the run's state.
        changed: whether the ledger has news for the gate (checked right after pausing,
            then every :data:`LEDGER_CHECK_S`).

    Returns:
        Why it returned, with the form's input if there was one.

    Raises:
        ApprovalWaitError: Prefect would not pause the run.
    """
    run_id = UUID(flow_run_id)
    proposed: State[Any] = Paused(
        timeout_seconds=int(window_s) + SERVER_GRACE_S, reschedule=False, pause_key=key
    )
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = {str(k): v for k, v in keyset.items()}
    # the form first: the server refuses a resume while the run's schema is missing
    form.save(keyset, flow_run_id=run_id)
    with get_client(sync_client=True) as client:
        state = propose_state_sync(client, proposed, flow_run_id=run_id)
        if not state.is_paused():
            raise ApprovalWaitError(
                f"Prefect did not pause the run for its approval (state {state.name})",
                hint="see the run's state history in the Prefect UI",
            )
        ends = time.monotonic() + window_s
        ledger_due = 0.0
        while True:
            now = time.monotonic()
            if now >= ledger_due:
                if changed():
                    return _resume_self(client, run_id, keyset["response"], "ledger")
                ledger_due = now + LEDGER_CHECK_S
            current = client.read_flow_run(run_id).state
            if current is not None and current.is_running():
                answer = _take(client, run_id, keyset["response"])
                return PauseOutcome("answered", answer, current.name or "Running")
            if current is None or not current.is_paused():
                name = (current.name if current is not None else None) or "unknown"
                return PauseOutcome("left", _take(client, run_id, keyset["response"]), name)
            if now >= ends:
                return _resume_self(client, run_id, keyset["response"], "window")
            time.sleep(poll_s)


def _resume_self(
    client: SyncPrefectClient, run_id: UUID, response_key: str, ended: Ended
) -> PauseOutcome:
    try:
        state = propose_state_sync(client, Running(), flow_run_id=run_id)
    except Abort:
        state = client.read_flow_run(run_id).state or Paused()
    # an answer may have arrived between the last poll and this: it is taken, not lost
    answer = _take(client, run_id, response_key)
    if not state.is_running():
        return PauseOutcome("left", answer, state.name or "unknown")
    return PauseOutcome("answered" if answer is not None else ended, answer, state.name or "")


def _take(client: SyncPrefectClient, run_id: UUID, key: str) -> dict[str, Any] | None:
    """The stored answer under ``key``, deleted from Prefect at once (None if none)."""
    found = client.filter_flow_run_input(
        flow_run_id=run_id, key_prefix=key, limit=1, exclude_keys=set()
    )
    if not found:
        return None
    client.delete_flow_run_input(run_id, key)
    value = found[0].decoded_value
    return value if isinstance(value, dict) else {}
