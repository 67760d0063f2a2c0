"""The check a run makes when it starts: does whoever submitted it still have the right?

A scheduled run may start days after it was submitted; its submitter's role may have been
revoked, their account disabled, or the hosts may have moved to another space since. The run
applies the rule it was authorized under (recorded with its submission) to the roles and
inventory of the moment, and refuses to act if it fails. A run without a submission was
started from the Prefect UI or API, which only platform operators reach - unless it carries
:data:`~quayside.auth.submission_tag.SUBMISSION_TAG`: a trigger created it for a submission it
then failed to record (its ledger write failed, or it died first), so nobody authenticated is
behind it and it refuses to act too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Engine

from quayside.auth.roles import PermissionDenied
from quayside.auth.run_scope import ScopeKind, authorize_run, scope_of_run
from quayside.auth.submission_tag import SUBMISSION_TAG
from quayside.errors import InputError, NotFoundError, QuaysideError
from quayside.inventory import Inventory
from quayside.ledger import audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import RunSubmission, SubmissionStatus
from quayside.ledger.submissions import (
    mark_submission,
    submission_of_run,
    waiting_submissions_of,
)
from quayside.ledger.users import find_user


class RunNotAuthorized(QuaysideError):
    """The run's submitter may no longer start it; nothing was done (recorded in the audit
    log as ``run.refused``)."""

    hint = "ask someone with the role to submit it again"


def confirm_submitter(
    db: Engine,
    inventory: Inventory,
    flow_run_id: str,
    params: Mapping[str, Any],
    tags: Collection[str] = (),
) -> str | None:
    """Check the submitter of ``flow_run_id`` against ``params`` as the run starts.

    Args:
        db: ledger Engine.
        inventory: the inventory of the moment.
        flow_run_id: the run.
        params: the run's parameters that say what it acts on (app, env, hosts, group).
        tags: the run's Prefect tags.

    Returns:
        The submitter (the authenticated principal the run is recorded under), or None for a
        run without a submission and without the submission tag (an operator's run).

    Raises:
        RunNotAuthorized: the submitter is disabled, lost the role, or the run would act on
            places they have no right to; or the submission was cancelled; or the run was
            created for a submission that was never recorded (audit ``run.refused``).
    """
    actor = f"flow-run:{flow_run_id}"
    submission = submission_of_run(db, flow_run_id)
    if submission is None:
        if SUBMISSION_TAG not in tags:
            return None
        reason = (
            f"it was created for a submission (tag {SUBMISSION_TAG}) that was never recorded: "
            "the trigger that created it failed before writing who asked for it"
        )
        _record_unsubmitted(db, flow_run_id, actor, reason)
        raise RunNotAuthorized(
            f"run refused at start: {reason}; nothing was done",
            hint="submit it again (the trigger said whether it failed); a run started from "
            "the Prefect UI carries no such tag",
        )
    if submission.status in (SubmissionStatus.refused, SubmissionStatus.cancelled):
        raise RunNotAuthorized(
            f"this run was {submission.status.value} before it started: "
            f"{submission.reason or 'no reason recorded'}"
        )
    refusal = _refusal(db, inventory, submission, params)
    if refusal is not None:
        reason = f"{submission.principal} may no longer start it: {refusal}"
        mark_submission(db, flow_run_id, SubmissionStatus.refused, actor=actor, reason=reason)
        raise RunNotAuthorized(
            f"run submitted by {submission.principal} through {submission.via} refused at "
            f"start: {refusal}"
        )
    mark_submission(db, flow_run_id, SubmissionStatus.started, actor=actor)
    return submission.principal


def withdrawn_submissions(
    db: Engine, inventory: Inventory, principal: str
) -> list[tuple[RunSubmission, str]]:
    """``principal``'s scheduled runs that have not started and that they may no longer start
    (after a role was revoked or the user disabled), each with the reason.

    The check uses what the submission recorded (app and env); a run that passes it is still
    checked in full when it starts.
    """
    out: list[tuple[RunSubmission, str]] = []
    user = find_user(db, principal)
    for submission in waiting_submissions_of(db, principal):
        if user is None or user.disabled:
            out.append((submission, f"user {principal} is disabled"))
            continue
        if submission.scope_kind != "app-env":
            continue  # what it acts on is known only from its parameters: checked at start
        refusal = _refusal(
            db, inventory, submission, {"app": submission.app, "env": submission.env}
        )
        if refusal is not None:
            out.append((submission, refusal))
    return out


def _refusal(
    db: Engine, inventory: Inventory, submission: RunSubmission, params: Mapping[str, Any]
) -> str | None:
    """Why ``submission``'s principal may not start it with ``params`` now (the rule it was
    authorized under, applied to today's roles and inventory), or None if they may."""
    kind: ScopeKind = submission.scope_kind  # type: ignore[assignment]
    try:
        scope = scope_of_run(
            inventory,
            deployment=submission.deployment,
            kind=kind,
            minimum_role=submission.minimum_role,
            params=params,
        )
        authorize_run(db, submission.principal, scope)
    except (PermissionDenied, NotFoundError, InputError) as e:
        return e.message
    return None


@retry_busy
def _record_unsubmitted(db: Engine, flow_run_id: str, actor: str, reason: str) -> None:
    """The audit event of a run refused for a submission that was never recorded (there is no
    submission row to mark)."""
    with unit_of_work(db) as session:
        audit.record(
            session,
            actor,
            "run.refused",
            "flow_run",
            flow_run_id,
            {"principal": None, "deployment": None, "reason": reason},
        )
