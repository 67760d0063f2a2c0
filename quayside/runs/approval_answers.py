"""Answering a run's approval from outside it: the CLI, the gateway and chat.

The answer is checked and recorded in the ledger where it arrives - the sender screened
(role, self-approval, the request still open; :func:`quayside.auth.approvals.screen_answerer`),
then decided (:func:`quayside.auth.approvals.decide` with the sender's token, or
:func:`~quayside.auth.approvals.decide_as` for a chat user authenticated by DingTalk's
signature). Only then is the run woken, with no input: its gate re-reads the request from the
ledger. Nothing secret passes through Prefect. A refused answer is recorded and the run is not
touched.

:func:`code_for_run` issues the single-use approval code an approver types into the Prefect
UI's form instead of a token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine

from quayside.auth.approval_codes import IssuedCode, issue_code
from quayside.auth.approvals import (
    Resolution,
    decide,
    decide_as,
    find_for_run,
    screen_answerer,
)
from quayside.auth.roles import PermissionDenied
from quayside.errors import InputError, NotFoundError, QuaysideError
from quayside.ledger.models import ApprovalRequest, ApprovalStatus
from quayside.runs.client import RunStatus, read_run, resume_run

#: how long a woken run may take to be back in its wait (it is between two waits)
WAKE_PATIENCE_S = 5.0
WAKE_POLL_S = 0.2

Wake = Literal["woken", "queued", "not waiting", "ended", "not woken"]
#: states in which a run's gate may still be reading the ledger (it looks before each wait)
_ACTIVE = ("RUNNING", "PENDING")


class NotWaitingForApproval(QuaysideError):
    """The run is not waiting for an approval (finished, or never asked for one)."""


@dataclass(frozen=True)
class Answered:
    """An answer recorded on a run's approval request.

    Attributes:
        run_id: the flow run.
        request_id: its approval request.
        resolution: what the ledger made of the answer (it counted; the request's status).
        wake: what became of the run: ``woken`` (resumed: its gate reads the ledger now),
            ``queued`` (it was already scheduled to resume, or starts later: its gate reads
            the ledger when it runs), ``not waiting`` (between two waits: its gate reads the
            ledger before it waits again), ``ended``, or ``not woken`` (it waits, but Prefect
            refused or could not be asked to resume it: ``why``; the approval sweep wakes it,
            :mod:`quayside.runs.approval_sweep`).
        why: why it was not woken (``not woken`` only).
    """

    run_id: str
    request_id: int
    resolution: Resolution
    wake: Wake
    why: str | None = None


def read_waiting_run(run_id: str) -> RunStatus:
    """The run ``run_id`` as Prefect has it.

    Raises:
        NotFoundError: no such run, or not a run id.
    """
    try:
        return read_run(run_id)
    except InputError:
        raise NotFoundError(f"no flow run {run_id[:64]!r}") from None


def open_request_of(engine: Engine, status: RunStatus) -> ApprovalRequest:
    """The approval request run ``status`` waits on (pending; the run not finished).

    Raises:
        NotWaitingForApproval: the run is finished, has no Quayside approval request, or its
            request is no longer pending.
    """
    if status.final:
        raise NotWaitingForApproval(
            f"run {status.id} is {status.state_name}, not waiting for approval",
            hint="only runs that wait for an approval (or are scheduled with one) take answers",
        )
    request = find_for_run(engine, status.id)
    if request is None:
        raise NotWaitingForApproval(
            f"run {status.id} is {status.state_name} and has no Quayside approval request",
            hint="resume a run paused by its own code from the Prefect UI",
        )
    if request.status is not ApprovalStatus.pending:
        raise NotWaitingForApproval(
            f"approval request {request.id} of run {status.id} is already {request.status.value}",
            hint="answers are taken while the request is pending",
        )
    return request


def answer_run(
    engine: Engine,
    run_id: str,
    *,
    user: str,
    decision: str,
    comment: str = "",
    token: str | None = None,
) -> Answered:
    """Record ``user``'s answer to the approval run ``run_id`` waits for, then wake the run.

    Args:
        engine: the ledger.
        run_id: the flow run (waiting in its own process, suspended, between two waits, or
            scheduled with an approval request opened at submit time).
        user: the sender, authenticated by the caller.
        decision: ``approve`` or ``reject``.
        comment: kept in the ledger.
        token: the sender's token, verified again and recorded through
            :func:`quayside.auth.approvals.decide`; None for a chat user authenticated by
            the chat's signature (:func:`quayside.auth.approvals.decide_as`).

    Returns:
        The recorded answer and what became of the run.

    Raises:
        NotFoundError: no such run.
        NotWaitingForApproval: the run does not wait for an approval.
        PermissionDenied: the sender may not answer, or the answer does not count (recorded
            in the ledger; the run is not touched).
    """
    status = read_waiting_run(run_id)
    request = open_request_of(engine, status)
    if status.state_type != "SCHEDULED":  # a run that waits: screened before it is woken
        screen_answerer(engine, request.id, user=user, decision=decision, comment=comment)
    if token is not None:
        outcome = decide(engine, request.id, token_text=token, decision=decision, comment=comment)
    else:
        outcome = decide_as(engine, request.id, user=user, decision=decision, comment=comment)
    if not outcome.accepted:
        raise PermissionDenied(
            f"the answer to approval request {request.id} does not count: {outcome.reason}",
            hint=f"it was recorded; the request is {outcome.status.value}",
        )
    wake, why = wake_gate(status)
    return Answered(status.id, request.id, outcome, wake, why)


def wake_gate(status: RunStatus, *, patience_s: float = WAKE_PATIENCE_S) -> tuple[Wake, str | None]:
    """Resume the run with no input so that its gate reads the ledger again.

    A run between two waits (its gate running) gets ``patience_s`` to be back in a wait; if
    it is not, it reads the ledger itself before it waits again. A paused run whose resume
    Prefect refuses (or an API that does not answer) is tried again for ``patience_s``.

    Returns:
        What became of the run, and why it was not woken (``not woken`` only).
    """
    deadline = time.monotonic() + patience_s
    refused: str | None = None
    while True:
        if status.final:
            return "ended", None
        if status.state_type == "SCHEDULED":
            return "queued", None  # resuming already, or not started: its gate reads the ledger
        if status.paused:
            try:
                answer = resume_run(status.id, None)
            except QuaysideError as e:
                refused = f"Prefect did not answer: {e.message}"
            else:
                if answer == "ACCEPT":
                    return "woken", None
                refused = f"Prefect answered the resume with {answer}"
        elif status.state_type not in _ACTIVE:
            return "not waiting", None
        else:
            refused = None  # it left its wait itself (it found the answer): nothing was lost
        if time.monotonic() >= deadline:
            return ("not waiting", None) if refused is None else ("not woken", refused)
        time.sleep(WAKE_POLL_S)
        try:
            status = read_run(status.id)
        except QuaysideError as e:
            return "not woken", f"Prefect could not be read: {e.message}"


def code_for_run(engine: Engine, run_id: str, *, user: str) -> IssuedCode:
    """A single-use approval code for ``user`` to answer run ``run_id`` in the Prefect UI.

    Raises:
        NotFoundError: no such run.
        NotWaitingForApproval: the run does not wait for an approval.
        PermissionDenied: ``user`` may not answer it (role, self-approval, already decided).
    """
    request = open_request_of(engine, read_waiting_run(run_id))
    return issue_code(engine, request.id, user=user)
