"""Approval for a scheduled run is asked when it is submitted, not when its time comes.

The task API (``exec_time``) and ``quayside deploy --at`` both open the ledger approval request
before they create the Prefect scheduled run, pass its id as the run's ``approval_request_id``
parameter (the flow's gate returns at once if it was approved in the meantime) and link the
request to the run once it exists. Until the run starts, answers go straight to the ledger.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from quayside.auth import approvals
from quayside.inventory.models import ApprovalPolicy
from quayside.runs.client import RunStatus, find_run_by_key


def open_for_scheduled_run(
    engine: Engine,
    *,
    deployment: str,
    app: str,
    env: str,
    space: str,
    policy: ApprovalPolicy,
    scheduled_at: datetime,
    requested_by: str,
    via: str,
    details: str = "",
    idempotency_key: str | None = None,
) -> int:
    """The approval request for a run scheduled at ``scheduled_at``.

    A retried submission (a run already exists with ``idempotency_key``) gets the request that
    run carries; otherwise a new one is opened under ``policy``.

    Returns:
        The ledger approval request id (pass it as the run's ``approval_request_id``).
    """
    if idempotency_key:
        existing = find_run_by_key(idempotency_key)
        if existing is not None:
            known = existing.parameters.get("approval_request_id")
            if isinstance(known, int):
                return known
    summary = (
        f"Scheduled **{deployment}** of {app}/{env} for {scheduled_at:%Y-%m-%d %H:%M} UTC, "
        f"requested by {requested_by} through {via}."
    )
    if details:
        summary += f"\n\n{details}"
    request = approvals.open_request(
        engine,
        app=app,
        env=env,
        space=space,
        summary=summary,
        requested_by=requested_by,
        policy=policy,
    )
    return int(request.id)


def pending_request_of(status: RunStatus) -> int | None:
    """The approval request a scheduled run (not yet started) carries, if any: answers to it
    go to the ledger, since there is no paused run to resume yet."""
    value = status.parameters.get("approval_request_id")
    if status.state_type == "SCHEDULED" and isinstance(value, int):
        return value
    return None
