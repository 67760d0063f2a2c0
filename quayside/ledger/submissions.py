"""Run submissions: which authenticated user started which flow run, through which trigger.

Written by the trigger paths (gateway, chat, hooks, CLI) when they create a run; read by the
run when it starts (its submitter's rights are checked again there) and by role revocation
(a revoked user's scheduled runs are cancelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from quayside.ledger import audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import RunSubmission, SubmissionStatus


@retry_busy
def record_submission(
    db: Engine | Session,
    *,
    flow_run_id: str,
    deployment: str,
    scope_kind: str,
    minimum_role: str,
    principal: str,
    via: str,
    app: str | None = None,
    env: str | None = None,
    scheduled_at: datetime | None = None,
    on_behalf_of: str | None = None,
) -> RunSubmission:
    """Record who submitted ``flow_run_id`` (idempotent: a retried submission of the same run
    keeps the first row; given an Engine, a busy ledger is tried again, which is safe for
    the same reason).

    ``on_behalf_of``: the name a SUPER user submitted it in the name of (the CLI's ``--as``);
    the principal stays the authenticated user, the audit event names both.

    Returns:
        The submission row.
    """
    with unit_of_work(db) as session:
        found = session.scalars(
            select(RunSubmission).where(RunSubmission.flow_run_id == flow_run_id)
        ).first()
        if found is not None:
            return found
        row = RunSubmission(
            flow_run_id=flow_run_id,
            deployment=deployment,
            scope_kind=scope_kind,
            minimum_role=minimum_role,
            principal=principal,
            via=via,
            app=app,
            env=env,
            scheduled_at=scheduled_at,
            status=SubmissionStatus.submitted,
        )
        session.add(row)
        session.flush()
        details: dict[str, str | None] = {
            "deployment": deployment,
            "via": via,
            "app": app,
            "env": env,
            "scheduled_at": scheduled_at.isoformat() if scheduled_at else None,
        }
        if on_behalf_of is not None:
            details["on_behalf_of"] = on_behalf_of
        audit.record(session, principal, "run.submitted", "flow_run", flow_run_id, details)
        return row


def submission_of_run(db: Engine | Session, flow_run_id: str) -> RunSubmission | None:
    """The submission of ``flow_run_id``, or None (a run started from the Prefect UI or API)."""
    with unit_of_work(db) as session:
        return session.scalars(
            select(RunSubmission).where(RunSubmission.flow_run_id == flow_run_id)
        ).first()


@retry_busy
def mark_submission(
    db: Engine | Session,
    flow_run_id: str,
    status: SubmissionStatus,
    *,
    actor: str,
    reason: str | None = None,
) -> None:
    """Move a submission to ``status``; a refusal or cancellation is an audit event.

    Given an Engine, a busy ledger is tried again (a run's start must not fail on a ledger
    busy for one timeout): one transaction, and a submission already in ``status`` is left
    alone, so trying again changes it once.
    """
    with unit_of_work(db) as session:
        row = session.scalars(
            select(RunSubmission).where(RunSubmission.flow_run_id == flow_run_id)
        ).first()
        if row is None or row.status is status:
            return
        row.status = status
        row.reason = reason
        if status in (SubmissionStatus.refused, SubmissionStatus.cancelled):
            audit.record(
                session,
                actor,
                f"run.{status.value}",
                "flow_run",
                flow_run_id,
                {"principal": row.principal, "deployment": row.deployment, "reason": reason},
            )


def waiting_submissions_of(db: Engine | Session, principal: str) -> Sequence[RunSubmission]:
    """``principal``'s scheduled submissions whose runs have not started yet, newest first."""
    with unit_of_work(db) as session:
        query = (
            select(RunSubmission)
            .where(
                RunSubmission.principal == principal,
                RunSubmission.status == SubmissionStatus.submitted,
                RunSubmission.scheduled_at.is_not(None),
            )
            .order_by(RunSubmission.id.desc())
        )
        return list(session.scalars(query))
