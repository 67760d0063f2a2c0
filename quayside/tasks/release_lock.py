"""The deploy lock of a release run, and what a refusal leaves behind.

A lock whose holder's run is over in Prefect (Completed, Failed, Crashed, Cancelled, or gone)
is free: the next release takes it over at once (audited ``lock.taken_over`` naming the dead
holder) instead of waiting out the dead run's lease. Prefect is asked through
:mod:`quayside.runs.liveness`; when it does not answer, the holder counts as alive.

A release refused because another run holds the lock of its app/environment did not fail: it
did not run. The refusal is recorded (a release ending ``cancelled`` with ``summary.result ==
"not run"`` and who holds the lock for what, audited like every release) and the Prefect run
ends ``Cancelled`` with that message instead of a red ``Failed``.

Used by every release flow::

    @flow(name="my-release")
    async def my_release(app: str, env: str) -> dict[str, Any] | State[Any]:
        return await run_release_body(_body, app=app, env=env)

    def _body(*, app: str, env: str) -> dict[str, Any]:
        with ExitStack() as stack:
            take_release_lock(stack, engine, app, env, holder=..., flow_run_id=...,
                              version=..., wait_s=0, record=lambda: new_release_row())
            ...  # the release, under the lock
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, NoReturn, TypeVar

from prefect.exceptions import MissingContextError
from prefect.logging.loggers import get_run_logger
from prefect.states import Cancelled, State
from sqlalchemy import Engine

from quayside.deploy.lease import deploy_lock
from quayside.errors import LockHeldError, QuaysideError
from quayside.ledger import locks
from quayside.ledger.models import ReleaseStatus
from quayside.tasks.release_finish import finish_release_run
from quayside.tasks.sync_body import run_sync_body

T = TypeVar("T")

NOT_RUN = "not run"
"""``summary.result`` of a release refused before it touched anything."""

LOCK_POLL_S = 1.0
"""How often a release waiting for the lock (``wait_s``) tries again."""

DeadHolder = Callable[[str], str | None]
"""Given the flow run id holding a lock: why that run is over (``flow run … is Crashed``),
or None while it may still act (or nobody can tell)."""


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def dead_holder(flow_run_id: str) -> str | None:
    """:data:`DeadHolder` from Prefect's own record of the run (:mod:`quayside.runs`)."""
    from uuid import UUID

    from quayside.runs.liveness import run_life

    try:
        UUID(flow_run_id)
    except ValueError:  # not a Prefect run (a lock taken by hand): nobody can tell
        return None
    try:
        life = run_life(flow_run_id)
    except QuaysideError as e:  # Prefect unreachable: the holder may be alive
        _logger().warning("cannot ask Prefect about lock holder %s: %s", flow_run_id, e)
        return None
    return life.describe() if life.over else None


class NotRun(LockHeldError):
    """The release did not run: another run holds the deploy lock (the message names it).
    The refusal is in the ledger; :func:`run_release_body` ends the flow run ``Cancelled``."""


def take_release_lock(
    stack: ExitStack,
    engine: Engine,
    app: str,
    env: str,
    *,
    holder: str,
    flow_run_id: str | None,
    version: str | None,
    wait_s: float,
    record: Callable[[], int | None],
    is_dead: DeadHolder = dead_holder,
    on_take_over: Callable[[str, str], None] | None = None,
) -> None:
    """Hold the deploy lock of ``app``/``env`` until ``stack`` closes, or record the refusal.

    A lock held by a run that is over (``is_dead``) is taken over at once; a live holder
    refuses (``wait_s`` 0) or is waited for, up to ``wait_s`` seconds, asking again every
    :data:`LOCK_POLL_S`.

    Args:
        stack: the release's exit stack (the lock is released when it closes).
        engine: the ledger.
        app: app name.
        env: environment name.
        holder: who holds it, shown to whoever is refused.
        flow_run_id: this run.
        version: what is being released, shown to whoever is refused.
        wait_s: 0 refuses at once; more waits up to that many seconds.
        record: called on a refusal only: the ledger release of this run, created if the run
            has none yet (it ends ``cancelled``, ``summary.result == "not run"``).
        is_dead: why a holder's run is over, or None (default: ask Prefect).
        on_take_over: called with the dead run's id and why it is dead after its lock was
            taken over (e.g. to reconcile the release it left ``running``).

    Raises:
        NotRun: the lock is held by another run; the refusal is recorded.
    """
    deadline = time.monotonic() + max(wait_s, 0.0)
    waiting = False
    while True:
        try:
            stack.enter_context(
                deploy_lock(
                    engine,
                    app,
                    env,
                    holder=holder,
                    flow_run_id=flow_run_id,
                    version=version,
                    wait_s=0,
                )
            )
            _reconcile_left_over(engine, app, env, flow_run_id, is_dead)
            return
        except LockHeldError as e:
            refusal = e
        if _took_over(engine, app, env, holder, flow_run_id, version, is_dead, on_take_over):
            continue
        if time.monotonic() + LOCK_POLL_S > deadline:
            break
        if not waiting:
            waiting = True
            left = max(deadline - time.monotonic(), 0.0)
            _logger().info("waiting up to %.0fs for the deploy lock: %s", left, refusal)
        time.sleep(LOCK_POLL_S)
    _refuse(engine, refusal, record)


def _reconcile_left_over(
    engine: Engine, app: str, env: str, flow_run_id: str | None, is_dead: DeadHolder
) -> None:
    """Under the lock, before anything changes: releases of app/env that dead runs left
    ``running`` are reconciled with the hosts (one ledger query when there are none). A
    reconcile that fails is a warning: the release goes on, the sweep at ``up`` retries."""
    from quayside.tasks.release_crash import reconcile_left_over

    try:
        for line in reconcile_left_over(engine, app, env, own_run_id=flow_run_id, why_dead=is_dead):
            _logger().warning("%s", line)
    except QuaysideError as e:
        _logger().warning("could not reconcile what earlier runs of %s/%s left: %s", app, env, e)


def _took_over(
    engine: Engine,
    app: str,
    env: str,
    holder: str,
    flow_run_id: str | None,
    version: str | None,
    is_dead: DeadHolder,
    on_take_over: Callable[[str, str], None] | None,
) -> bool:
    """Take the lock over if its holder's run is over; True when this run now holds it."""
    held = locks.current_lock(engine, app, env)
    dead_id = held.flow_run_id if held is not None else None
    if dead_id is None or dead_id == flow_run_id:
        return False
    why = is_dead(dead_id)
    if why is None:
        return False
    taken = locks.take_over(
        engine,
        app,
        env,
        dead_flow_run_id=dead_id,
        holder=holder,
        flow_run_id=flow_run_id,
        version=version,
        reason=why,
    )
    if taken is None:  # it changed hands meanwhile: ask again
        return False
    assert held is not None
    _logger().warning("took over the deploy lock of %s/%s from %s: %s", app, env, held.holder, why)
    if on_take_over is not None:
        on_take_over(dead_id, why)
    return True


def _refuse(engine: Engine, e: LockHeldError, record: Callable[[], int | None]) -> NoReturn:
    """Record the refusal (a ``cancelled`` release, "not run") and raise :class:`NotRun`."""
    finish_release_run(
        engine,
        record(),
        ReleaseStatus.cancelled,
        summary={"result": NOT_RUN, "reason": str(e)},
        details={"error": str(e)[:500]},
        quiet=True,
    )
    raise NotRun(str(e), hint=e.hint) from e


async def run_release_body(body: Callable[..., T], /, **parameters: Any) -> T | State[Any]:
    """:func:`quayside.tasks.sync_body.run_sync_body` for a release flow: a release that did not run
    (:class:`NotRun`) ends the flow run ``Cancelled`` with ``"not run: <who holds the lock>"``.

    Called in-process, such a flow raises ``prefect.exceptions.CancelledRun`` with that
    message (Prefect 3.8 raises for a returned non-completed state); through a worker the run
    ends in the Cancelled state.
    """
    try:
        return await run_sync_body(body, **parameters)
    except NotRun as e:
        message = f"{NOT_RUN}: {e}"
        get_run_logger().warning("%s", message)
        return Cancelled(message=message)
