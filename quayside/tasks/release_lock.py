"""The deploy lock of a release run, and what a refusal leaves behind.

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

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

from prefect.logging.loggers import get_run_logger
from prefect.states import Cancelled, State
from sqlalchemy import Engine

from quayside.deploy.lease import deploy_lock
from quayside.errors import LockHeldError
from quayside.ledger.models import ReleaseStatus
from quayside.tasks.release_finish import finish_release_run
from quayside.tasks.sync_body import run_sync_body

T = TypeVar("T")

NOT_RUN = "not run"
"""``summary.result`` of a release refused before it touched anything."""


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
) -> None:
    """Hold the deploy lock of ``app``/``env`` until ``stack`` closes, or record the refusal.

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

    Raises:
        NotRun: the lock is held by another run; the refusal is recorded.
    """
    try:
        stack.enter_context(
            deploy_lock(
                engine,
                app,
                env,
                holder=holder,
                flow_run_id=flow_run_id,
                version=version,
                wait_s=wait_s,
            )
        )
    except LockHeldError as e:
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
