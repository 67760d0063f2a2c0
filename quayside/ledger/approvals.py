"""Approval requests and the decisions on them.

A request is approved once it has ``required_approvals`` valid approvals, rejected by any
valid rejection, and expired once ``expires_at`` passes while still pending. A decision that
cannot count (the requester approving their own request, a second vote by the same person, a
vote on a closed request) is still recorded, with ``valid=False`` and the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, exists, or_, select
from sqlalchemy.orm import Session, aliased

from quayside.errors import InputError, NotFoundError
from quayside.ledger import audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    Decision,
    Release,
    ReleaseStatus,
    utcnow,
)


def _get(session: Session, request_id: int) -> ApprovalRequest:
    query = select(ApprovalRequest).where(ApprovalRequest.id == request_id).with_for_update()
    found = session.scalars(query).one_or_none()
    if found is None:
        raise NotFoundError(f"approval request {request_id} is not in the ledger")
    return found


@retry_busy
def create_request(
    db: Engine | Session,
    app: str,
    env: str,
    *,
    summary: str,
    requested_by: str,
    required_approvals: int = 1,
    flow_run_id: str | None = None,
    release_id: int | None = None,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Open an approval request.

    Given an Engine, a busy ledger is tried again: one transaction, rolled back whole when an
    attempt fails, so trying again opens one request.

    Args:
        db: Engine (own transaction) or Session (caller's transaction).
        app: app name.
        env: environment name.
        summary: Markdown shown to approvers (what changes, diff, plan).
        requested_by: who asks; they cannot approve it themselves.
        required_approvals: how many distinct approvers are needed (at least 1).
        flow_run_id: the paused Prefect flow run waiting for the answer.
        release_id: the release waiting for it, if any.
        expires_in: how long it stays open (default: until decided).
        now: creation time (default now).

    Returns:
        The new ApprovalRequest, pending.

    Raises:
        InputError: ``required_approvals`` below 1.
        LedgerError: the database refused the change (e.g. an unknown release id).
    """
    if required_approvals < 1:
        raise InputError(f"required_approvals must be at least 1, not {required_approvals}")
    created = now or utcnow()
    with unit_of_work(db) as session:
        request = ApprovalRequest(
            flow_run_id=flow_run_id,
            release_id=release_id,
            app=app,
            env=env,
            summary=summary,
            required_approvals=required_approvals,
            status=ApprovalStatus.pending,
            requested_by=requested_by,
            created_at=created,
            expires_at=created + expires_in if expires_in is not None else None,
        )
        session.add(request)
        session.flush()
        audit.record(
            session,
            requested_by,
            "approval.requested",
            "approval_request",
            request.id,
            {
                "app": app,
                "env": env,
                "required_approvals": required_approvals,
                "flow_run_id": flow_run_id,
                "release_id": release_id,
            },
        )
        return request


def _outcome(request: ApprovalRequest, now: datetime) -> ApprovalStatus:
    valid = [d for d in request.decisions if d.valid]
    if any(d.decision is Decision.reject for d in valid):
        return ApprovalStatus.rejected
    if sum(d.decision is Decision.approve for d in valid) >= request.required_approvals:
        return ApprovalStatus.approved
    if request.expires_at is not None and now >= request.expires_at:
        return ApprovalStatus.expired
    return ApprovalStatus.pending


def _invalid_reason(
    request: ApprovalRequest, user: str, now: datetime, allow_self_approval: bool
) -> str | None:
    if request.status is not ApprovalStatus.pending:
        return f"request is already {request.status}"
    if request.expires_at is not None and now >= request.expires_at:
        return "request expired"
    if any(d.valid and d.user == user for d in request.decisions):
        return f"{user} has already decided"
    if not allow_self_approval and user == request.requested_by:
        return "the requester cannot decide their own request"
    return None


def record_decision(
    db: Engine | Session,
    request_id: int,
    user: str,
    decision: Decision | str,
    *,
    comment: str | None = None,
    allow_self_approval: bool = False,
    now: datetime | None = None,
) -> ApprovalDecision:
    """Record ``user``'s decision and update the request's status in the same transaction.

    Args:
        db: Engine or Session.
        request_id: the approval request.
        user: who decides.
        decision: ``approve`` or ``reject``.
        comment: optional comment.
        allow_self_approval: let the requester decide their own request.
        now: decision time (default now).

    Returns:
        The ApprovalDecision; check ``valid``/``reason`` and ``request.status``.

    Raises:
        InputError: unknown decision.
        NotFoundError: no such request.
        LedgerError: the database refused the change.
    """
    try:
        decision = Decision(decision)
    except ValueError as e:
        raise InputError(f"decision must be approve or reject, not {decision!r}") from e
    at = now or utcnow()
    with unit_of_work(db) as session:
        request = _get(session, request_id)
        reason = _invalid_reason(request, user, at, allow_self_approval)
        row = ApprovalDecision(
            request=request,
            user=user,
            decision=decision,
            comment=comment,
            created_at=at,
            valid=reason is None,
            reason=reason,
        )
        session.add(row)
        before = request.status
        if before is ApprovalStatus.pending:
            request.status = _outcome(request, at)
            if request.status is not ApprovalStatus.pending:
                request.decided_at = at
        session.flush()
        audit.record(
            session,
            user,
            "approval.decided",
            "approval_request",
            request.id,
            {
                "decision": decision.value,
                "valid": reason is None,
                "reason": reason,
                "comment": comment,
                "status": request.status.value,
            },
        )
        return row


@retry_busy
def resolve(
    db: Engine | Session,
    request_id: int,
    *,
    actor: str = "system",
    now: datetime | None = None,
) -> ApprovalRequest:
    """Bring a request's status up to date (e.g. expire it once ``expires_at`` has passed).

    Writes one audit event if the status changed, none otherwise. Given an Engine, a busy
    ledger is tried again (a run waiting for approval asks this on every poll): one
    transaction, and an up-to-date request is left alone.

    Args:
        db: Engine or Session.
        request_id: the approval request.
        actor: who, for the audit log.
        now: the time to judge expiry by (default now).

    Returns:
        The ApprovalRequest with its current status and decisions.

    Raises:
        NotFoundError: no such request.
        LedgerError: the database refused the change.
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        request = _get(session, request_id)
        if request.status is ApprovalStatus.pending:
            status = _outcome(request, at)
            if status is not ApprovalStatus.pending:
                request.status = status
                request.decided_at = at
                audit.record(
                    session,
                    actor,
                    "approval.resolved",
                    "approval_request",
                    request.id,
                    {"status": status.value},
                )
        return request


def get_request(db: Engine | Session, request_id: int) -> ApprovalRequest:
    """One approval request with its decisions.

    Args:
        db: Engine or Session.
        request_id: the request.

    Returns:
        The ApprovalRequest.

    Raises:
        NotFoundError: no such request.
    """
    with unit_of_work(db) as session:
        found = session.get(ApprovalRequest, request_id)
        if found is None:
            raise NotFoundError(f"approval request {request_id} is not in the ledger")
        return found


def void_request(
    db: Engine | Session,
    request_id: int,
    reason: str,
    *,
    actor: str = "system",
    now: datetime | None = None,
) -> None:
    """Close a request whose subject changed (another plan, version or run) as ``voided``;
    its approvals no longer count for anything. A request already closed is left as it is.

    Raises:
        NotFoundError: no such request.
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        request = _get(session, request_id)
        if request.status in (ApprovalStatus.approved, ApprovalStatus.pending):
            before = request.status
            request.status = ApprovalStatus.voided
            request.decided_at = at
            audit.record(
                session,
                actor,
                "approval.voided",
                "approval_request",
                request.id,
                {"status": "voided", "was": before.value, "reason": reason},
            )


#: how long after its decision a request whose run has no release awaiting it is still looked
#: at by :func:`decided_while_waiting` (a release awaiting approval: until it moves, or
#: :data:`DECIDED_LONG_AGO` - a run suspended that long has had its wait time out)
DECIDED_RECENTLY = timedelta(hours=1)
DECIDED_LONG_AGO = timedelta(days=7)


def decided_while_waiting(
    db: Engine | Session, *, now: datetime | None = None, limit: int = 200
) -> dict[str, int]:
    """The runs whose latest approval request is decided (approved or rejected) while the
    run may still be waiting on it: its release still ``awaiting_approval`` (decided within
    :data:`DECIDED_LONG_AGO`), or - a request with no release still awaiting - decided within
    :data:`DECIDED_RECENTLY`. A run that waits on a newer request of its own (a later gate) is
    not among them.

    Args:
        db: Engine or Session.
        now: the time "recently" is judged by (default now).
        limit: at most this many, the latest decided first.

    Returns:
        Flow run id -> its decided request's id.
    """
    at = now or utcnow()
    since = at - DECIDED_RECENTLY
    newer = aliased(ApprovalRequest)
    query = (
        select(ApprovalRequest.flow_run_id, ApprovalRequest.id)
        .outerjoin(Release, Release.id == ApprovalRequest.release_id)
        .where(
            ApprovalRequest.flow_run_id.is_not(None),
            ApprovalRequest.status.in_((ApprovalStatus.approved, ApprovalStatus.rejected)),
            ApprovalRequest.decided_at >= at - DECIDED_LONG_AGO,
            or_(
                Release.status == ReleaseStatus.awaiting_approval,
                ApprovalRequest.decided_at >= since,
            ),
            ~exists().where(
                newer.flow_run_id == ApprovalRequest.flow_run_id, newer.id > ApprovalRequest.id
            ),
        )
        .order_by(ApprovalRequest.decided_at.desc(), ApprovalRequest.id.desc())
        .limit(limit)
    )
    with unit_of_work(db) as session:
        return {str(run_id): int(request_id) for run_id, request_id in session.execute(query)}


def pending_of_runs(db: Engine | Session, *, limit: int = 200) -> dict[str, int]:
    """The pending requests that belong to a flow run, newest first: run id -> request id
    (the run's latest pending one)."""
    query = (
        select(ApprovalRequest.flow_run_id, ApprovalRequest.id)
        .where(
            ApprovalRequest.flow_run_id.is_not(None),
            ApprovalRequest.status == ApprovalStatus.pending,
        )
        .order_by(ApprovalRequest.id.desc())
        .limit(limit)
    )
    with unit_of_work(db) as session:
        found: dict[str, int] = {}
        for run_id, request_id in session.execute(query):
            found.setdefault(str(run_id), int(request_id))
        return found


def awaiting_of_runs(db: Engine | Session, *, limit: int = 200) -> dict[str, int]:
    """The releases still ``awaiting_approval`` that belong to a flow run, newest first:
    run id -> release id."""
    query = (
        select(Release.flow_run_id, Release.id)
        .where(
            Release.flow_run_id.is_not(None),
            Release.status == ReleaseStatus.awaiting_approval,
        )
        .order_by(Release.id.desc())
        .limit(limit)
    )
    with unit_of_work(db) as session:
        found: dict[str, int] = {}
        for run_id, release_id in session.execute(query):
            found.setdefault(str(run_id), int(release_id))
        return found
