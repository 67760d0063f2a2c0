"""Approval for a scheduled run is asked when it is submitted, not when its time comes.

The task API (``exec_time``) and ``quayside deploy --at`` create the Prefect scheduled run
first, then open the ledger approval request *for that run* (its flow run id, app, env and
the exact version it releases), so the run's gate finds it when the run starts and returns
at once if it was approved meanwhile. No run parameter names the request: the gate accepts
only a request opened for its own run. Until the run starts, answers go straight to the
ledger.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from quayside.auth import approvals
from quayside.inventory.models import ApprovalPolicy
from quayside.markdown_text import inline

DETAILS_LIMIT = 4000
"""Characters of ``details`` kept in a summary."""


def open_for_scheduled_run(
    engine: Engine,
    *,
    flow_run_id: str,
    deployment: str,
    app: str,
    env: str,
    version: str,
    space: str,
    policy: ApprovalPolicy,
    scheduled_at: datetime,
    requested_by: str,
    via: str,
    details: str = "",
) -> int:
    """The approval request of scheduled run ``flow_run_id`` (a retried submission of the
    same run gets the request it already has).

    Its summary is Markdown in which every value, and each line of ``details`` (plain text,
    such as a task's free-text remarks), is escaped: none adds a row, a link or an image.

    Returns:
        The ledger approval request id.
    """
    existing = approvals.find_for_run(engine, flow_run_id, app=app, env=env)
    if existing is not None:
        return int(existing.id)
    summary = (
        f"Scheduled **{inline(deployment)}** of {inline(app)}/{inline(env)} "
        f"({inline(version)}) for {scheduled_at:%Y-%m-%d %H:%M} UTC, requested by "
        f"{inline(requested_by)} through {inline(via)}."
    )
    lines = [inline(line, limit=None) for line in details[:DETAILS_LIMIT].splitlines()]
    if any(lines):
        summary += "\n\n" + "\n".join(line for line in lines if line)
    request = approvals.open_request(
        engine,
        app=app,
        env=env,
        space=space,
        summary=summary,
        requested_by=requested_by,
        policy=policy,
        flow_run_id=flow_run_id,
        version=version,
    )
    return int(request.id)
