"""The approval sweep behind every answer: waking the runs whose approval was decided while
they still wait, and closing the requests whose run ended without an answer.

An answer is recorded in the ledger first and the run is woken after
(:mod:`quayside.runs.approval_answers`). If that wake is lost - the Prefect API down or
restarting at that moment, the answering process killed between the two steps, Prefect
refusing the resume - a *suspended* run would wait until its request expires, although it is
approved, and nobody could answer again (the request is no longer pending). A run paused in
its own process finds the decision itself (its gate looks at the ledger every few seconds);
a suspended one has no process.

So the gateway's periodic sweep (and ``quayside approvals sweep``) wakes, with no input, every
run that Prefect shows suspended on that request's wait while the request is decided
(:func:`quayside.ledger.approvals.decided_while_waiting`): its gate reads the ledger and goes
on, or ends the release if it was rejected. Waking a run that was already woken is harmless
(Prefect refuses a resume of a run that is not paused).

The same sweep closes what can no longer be answered: a pending request whose run ended
(cancelled in the UI while it waited, crashed) is voided and the release awaiting it ends
``cancelled`` (:func:`close_for_ended_runs`), instead of both waiting until the request
expires.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine

from quayside.auth.approval_keys import pause_key_prefix
from quayside.auth.approvals import cancel_awaiting, close_for_ended_run
from quayside.errors import QuaysideError
from quayside.ledger.approvals import awaiting_of_runs, decided_while_waiting, pending_of_runs
from quayside.runs.liveness import RunLife, runs_life

#: who the sweep's ledger changes are recorded as
SWEEP_ACTOR = "approval-sweep"


@dataclass(frozen=True)
class WakeResult:
    """One run the sweep found paused with a decided request.

    Attributes:
        run_id: the flow run.
        request_id: its decided approval request.
        status: Prefect's answer to the resume (``ACCEPT`` when it took effect).
    """

    run_id: str
    request_id: int
    status: str

    @property
    def line(self) -> str:
        verdict = "woken" if self.status == "ACCEPT" else f"not woken (Prefect: {self.status})"
        return f"run {self.run_id} (approval request {self.request_id} decided): {verdict}"


def wake_decided(
    engine: Engine,
    *,
    lives: Callable[[list[str]], Mapping[str, RunLife]] = runs_life,
    resume: Callable[[str], str] | None = None,
) -> list[WakeResult]:
    """Wake every run that is paused although its latest approval request is decided.

    Args:
        engine: the ledger.
        lives: what Prefect says about the runs (one request for all of them).
        resume: resumes one run with no input, returns Prefect's status (default: the API).

    Returns:
        One result per run it tried to wake (none when nothing waits on a decision).

    Raises:
        PrefectUnavailable: the API does not answer.
    """
    decided = decided_while_waiting(engine)
    if not decided:
        return []
    if resume is None:
        from quayside.runs.client import resume_run

        def resume(run_id: str) -> str:
            return resume_run(run_id, None)

    found = lives(list(decided))
    results = []
    for run_id, request_id in decided.items():
        life = found.get(run_id)
        if life is None or not suspended_on(life, request_id):
            continue
        try:
            status = resume(run_id)
        except QuaysideError as e:  # this run's turn failed; the others still get theirs
            status = e.message
        results.append(WakeResult(run_id, request_id, status))
    return results


def suspended_on(life: RunLife, request_id: int) -> bool:
    """Whether the run is suspended (its process gone) on a wait of approval request
    ``request_id``: not paused in its own process (its gate reads the ledger itself), not
    waiting on anything else."""
    return (
        life.state_type == "PAUSED"
        and life.state_name == "Suspended"
        and (life.pause_key or "").startswith(pause_key_prefix(request_id))
    )


def close_for_ended_runs(
    engine: Engine,
    *,
    lives: Callable[[list[str]], Mapping[str, RunLife]] = runs_life,
) -> list[str]:
    """Close what a run that ended (Prefect shows it Cancelled, Crashed, Failed or Completed:
    cancelled in the UI while it waited, say) left waiting in the ledger, instead of it
    waiting until the request expires: its pending request is voided (or expired, when its
    time is up) and its release still ``awaiting_approval`` ends cancelled - also one whose
    request was answered but whose run ended before it went on. A run Prefect does not know
    (deleted, or another server's) is left alone.

    Returns:
        One line per request or release closed (or why one could not be).

    Raises:
        PrefectUnavailable: the API does not answer (nothing is closed).
    """
    pending = pending_of_runs(engine)
    awaiting = awaiting_of_runs(engine)
    if not pending and not awaiting:
        return []
    found = lives(list(dict.fromkeys([*pending, *awaiting])))
    lines = []
    for run_id in dict.fromkeys([*pending, *awaiting]):
        life = found.get(run_id)
        if life is None or not life.exists or not life.final:
            continue
        why = f"its run ended without an answer ({life.describe()})"
        try:
            if run_id in pending:
                done = close_for_ended_run(engine, pending[run_id], why, actor=SWEEP_ACTOR)
                if done is not None:
                    lines.append(f"approval request {pending[run_id]} {done}: {why}")
            if run_id in awaiting and cancel_awaiting(
                engine, awaiting[run_id], f"its run ended ({life.describe()})", actor=SWEEP_ACTOR
            ):
                lines.append(
                    f"release {awaiting[run_id]} cancelled: its run ended ({life.describe()})"
                )
        except QuaysideError as e:  # this one's turn failed; the others still get theirs
            lines.append(f"run {run_id}: not closed ({e.message})")
    return lines


def wake_and_close(engine: Engine) -> list[str]:
    """The sweep's Prefect part, in order: :func:`wake_decided`, then
    :func:`close_for_ended_runs`; one line per run woken or request closed.

    Raises:
        PrefectUnavailable: the API does not answer.
    """
    return [r.line for r in wake_decided(engine)] + close_for_ended_runs(engine)
