"""Answering approval requests: one path for the gateway, the CLI, chat and the gate.

A request carries the policy it was opened under (space, minimum role, self-approval). An
answer arrives as (token, decision, comment); :func:`decide` authenticates the token
(single-use approval tokens are consumed), checks the approver's role and the policy, and
records the decision — a refused answer is recorded too, ``valid=False`` with the reason, and
never counts. An answer whose sender the caller authenticated otherwise (a chat user by the
chat's signature, an approval code's user: :mod:`quayside.auth.approval_codes`) goes through
:func:`decide_as`, the same checks without the token. The token itself is never stored or
echoed: the ledger keeps the user it belonged to, or ``token qs_<id>_…`` when it belonged to
nobody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from quayside.auth import tokens
from quayside.auth.roles import PermissionDenied, Role, check_approver
from quayside.auth.service import AuthFailed, authenticate
from quayside.errors import InputError
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals, audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    Decision,
    ReleaseStatus,
    utcnow,
)
from quayside.ledger.release_queries import get_release
from quayside.ledger.releases import finish_release

DEFAULT_SPACE = "default"
DEFAULT_GATE = "release"
"""The key of a run's first (usually only) approval gate; a run with more gates (a canary
publish: before the canary, then ``rest``) keys each, so each has its own request."""
# Requests from before migration 0002 carry no policy: judge them by the production default.
FALLBACK_POLICY = ApprovalPolicy(required=1, role="MASTER", allow_self_approval=False)


@dataclass(frozen=True)
class Resolution:
    """What became of one answer.

    Attributes:
        request_id: the approval request.
        status: the request's status after the answer.
        user: who answered (None when the token identified nobody).
        accepted: the answer counted.
        reason: why it did not count (None when accepted).
        approvers: users whose approvals count so far.
    """

    request_id: int
    status: ApprovalStatus
    user: str | None
    accepted: bool
    reason: str | None
    approvers: tuple[str, ...]


def valid_approvers(request: ApprovalRequest) -> tuple[str, ...]:
    """Users whose approvals of ``request`` count, in order."""
    return tuple(d.user for d in request.decisions if d.valid and d.decision is Decision.approve)


def policy_of(request: ApprovalRequest) -> ApprovalPolicy:
    """The policy ``request`` was opened under (the production default for old rows)."""
    if request.approver_role is None:
        return FALLBACK_POLICY
    return ApprovalPolicy(
        required=request.required_approvals,
        role=Role.parse(request.approver_role).name,  # type: ignore[arg-type]
        allow_self_approval=request.allow_self_approval,
    )


def excluded_of(request: ApprovalRequest) -> dict[str, str]:
    """Who may not answer ``request`` beyond its requester, user -> why (the rule)."""
    return {str(k): str(v) for k, v in (request.excluded_approvers or {}).items()}


def check_answerer(db: Engine | Session, request: ApprovalRequest, user: str) -> Role:
    """Check that ``user`` may answer ``request`` under the policy it was opened under: the
    role, self-approval and the excluded approvers (every answer path calls this).

    Raises:
        PermissionDenied: naming the rule that refuses ``user``.
    """
    return check_approver(
        db,
        approver=user,
        requester=request.requested_by,
        space=request.space or DEFAULT_SPACE,
        project=request.app,
        policy=policy_of(request),
        excluded=excluded_of(request),
    )


@retry_busy
def open_request(
    db: Engine | Session,
    *,
    app: str,
    env: str,
    space: str,
    summary: str,
    requested_by: str,
    policy: ApprovalPolicy,
    flow_run_id: str | None = None,
    release_id: int | None = None,
    version: str | None = None,
    plan_hash: str | None = None,
    excluded_approvers: Mapping[str, str] | None = None,
    gate: str = DEFAULT_GATE,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Open an approval request that remembers its policy and what it approves.

    Given an Engine (as the approval gate calls it), a busy ledger is tried again: one
    transaction, rolled back whole when an attempt fails, so trying again opens one request.

    Args:
        db: ledger Engine or Session.
        app: app name (the project roles are checked on).
        env: environment name.
        space: the app's space.
        summary: Markdown shown to approvers.
        requested_by: who asks.
        policy: the environment's policy (``required`` below 1 is treated as 1: a gate that
            runs always needs an answer).
        flow_run_id: the flow run waiting for it.
        release_id: the release waiting for it.
        version: the exact version it approves (a gate accepts it for nothing else).
        plan_hash: the digest of the plan it shows (a gate voids it if the plan changes).
        excluded_approvers: who else may not approve it, user -> why (e.g. the editors of
            the versions a config publish releases, under ``allow_editor_approval: false``).
        gate: which gate of the run it answers (:data:`DEFAULT_GATE` for the first).
        now: creation time.

    Returns:
        The pending request.
    """
    with unit_of_work(db) as session:
        request = approvals.create_request(
            session,
            app,
            env,
            summary=summary,
            requested_by=requested_by,
            required_approvals=max(1, policy.required),
            flow_run_id=flow_run_id,
            release_id=release_id,
            expires_in=timedelta(hours=policy.timeout_hours),
            now=now,
        )
        request.space = space
        request.approver_role = policy.role
        request.allow_self_approval = policy.allow_self_approval
        request.version = version
        request.plan_hash = plan_hash
        request.excluded_approvers = dict(excluded_approvers) if excluded_approvers else None
        request.gate = gate
        return request


def find_for_run(
    db: Engine | Session,
    flow_run_id: str,
    *,
    app: str | None = None,
    env: str | None = None,
    gate: str | None = None,
) -> ApprovalRequest | None:
    """The latest approval request of a flow run, or None.

    Args:
        db: ledger Engine or Session.
        flow_run_id: the flow run.
        app: only for this app.
        env: only for this environment.
        gate: only this gate's (a gate looks up its own request: a run with two gates never
            takes one's request, codes or decisions for the other's). None: the run's latest
            request of any gate - the one it waits on now (gates come one after the other),
            which is what the CLI, the gateway and chat answer.
    """
    with unit_of_work(db) as session:
        query = (
            select(ApprovalRequest)
            .where(ApprovalRequest.flow_run_id == flow_run_id)
            .order_by(ApprovalRequest.id.desc())
        )
        if app is not None:
            query = query.where(ApprovalRequest.app == app)
        if env is not None:
            query = query.where(ApprovalRequest.env == env)
        if gate is not None:
            query = query.where(ApprovalRequest.gate == gate)
        return session.scalars(query).first()


def _record_refused(
    db: Engine | Session,
    request_id: int,
    user: str,
    decision: Decision,
    comment: str | None,
    reason: str,
    now: datetime,
) -> None:
    with unit_of_work(db) as session:
        request = session.get(ApprovalRequest, request_id)
        if request is None:
            raise InputError(f"approval request {request_id} is not in the ledger")
        session.add(
            ApprovalDecision(
                request=request,
                user=user,
                decision=decision,
                comment=comment,
                created_at=now,
                valid=False,
                reason=reason,
            )
        )
        session.flush()
        audit.record(
            session,
            user,
            "approval.decided",
            "approval_request",
            request_id,
            {
                "decision": decision.value,
                "valid": False,
                "reason": reason,
                "comment": comment,
                "status": request.status.value,
            },
        )


def _who(token_text: str) -> str:
    try:
        token_id, _ = tokens.parse_token(token_text)
    except InputError:
        return "anonymous"
    return f"token {tokens.display(token_id)}"


def _choice(decision: Decision | str) -> Decision:
    try:
        return Decision(decision)
    except ValueError:
        raise InputError(f"decision must be approve or reject, not {decision!r}") from None


def decide(
    db: Engine | Session,
    request_id: int,
    *,
    token_text: str,
    decision: Decision | str,
    comment: str = "",
    now: datetime | None = None,
) -> Resolution:
    """Answer approval request ``request_id`` with a token.

    The answer is always recorded. It counts only if the token is valid (a single-use
    approval token is consumed here), its user has the policy's role in the app's space or
    project, and the policy allows them to answer (self-approval, one vote per person, the
    request still open).

    Args:
        db: ledger Engine.
        request_id: the approval request.
        token_text: the approver's token (never stored or echoed).
        decision: ``approve`` or ``reject``.
        comment: optional comment.
        now: time of the answer (default now).

    Returns:
        The Resolution: the request's status and whether this answer counted and why not.

    Raises:
        InputError: ``decision`` is neither approve nor reject.
        NotFoundError: no such request.
    """
    choice = _choice(decision)
    at = now or utcnow()
    approvals.get_request(db, request_id)  # NotFoundError before anything is recorded
    try:
        who = authenticate(db, token_text, now=at, allow_approval_once=True)
    except AuthFailed as refused:
        recorded = refuse(db, request_id, _who(token_text), choice, comment, str(refused), now=at)
        return replace(recorded, user=None)  # the token identified nobody
    return decide_as(db, request_id, user=who.name, decision=choice, comment=comment, now=at)


def decide_as(
    db: Engine | Session,
    request_id: int,
    *,
    user: str,
    decision: Decision | str,
    comment: str = "",
    now: datetime | None = None,
) -> Resolution:
    """Answer approval request ``request_id`` as ``user``, whom the caller authenticated
    (a token checked by :func:`decide`, a DingTalk signature and linked staff id, a
    single-use approval code).

    Recorded like every answer; it counts only if ``user`` has the policy's role in the app's
    space or project and the policy allows them to answer (self-approval, one vote per person,
    the request still open).

    Returns:
        The Resolution.

    Raises:
        InputError: ``decision`` is neither approve nor reject.
        NotFoundError: no such request.
    """
    choice = _choice(decision)
    at = now or utcnow()
    request = approvals.get_request(db, request_id)
    policy = policy_of(request)
    try:
        check_answerer(db, request, user)
    except PermissionDenied as refused:
        return refuse(db, request_id, user, choice, comment, str(refused), now=at)
    row = approvals.record_decision(
        db,
        request_id,
        user,
        choice,
        comment=comment or None,
        allow_self_approval=policy.allow_self_approval,
        now=at,
    )
    current = approvals.get_request(db, request_id)
    return Resolution(
        request_id, current.status, user, row.valid, row.reason, valid_approvers(current)
    )


def refuse(
    db: Engine | Session,
    request_id: int,
    user: str,
    decision: Decision | str,
    comment: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> Resolution:
    """Record an answer that does not count (``valid=False`` with ``reason``) and return
    the request's state after it.

    Raises:
        InputError: no such request, or a bad ``decision``.
    """
    at = now or utcnow()
    _record_refused(db, request_id, user, _choice(decision), comment or None, reason, at)
    current = approvals.resolve(db, request_id, now=at)
    return Resolution(request_id, current.status, user, False, reason, valid_approvers(current))


def expire_overdue(
    db: Engine | Session, *, now: datetime | None = None, actor: str = "system"
) -> Sequence[int]:
    """Record Expired on every pending request past its ``expires_at``.

    A suspended flow run whose approval timed out is failed by the Prefect server without
    running any Quayside code, so the expiry is written here: by the gateway's periodic sweep,
    by ``quayside approvals expire``, and whenever a late answer arrives.

    Returns:
        The ids of the requests that expired now.
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        query = select(ApprovalRequest.id).where(
            ApprovalRequest.status == ApprovalStatus.pending,
            ApprovalRequest.expires_at.is_not(None),
            ApprovalRequest.expires_at <= at,
        )
        due = list(session.scalars(query))
    expired = []
    for request_id in due:
        request = approvals.resolve(db, request_id, actor=actor, now=at)
        if request.status is ApprovalStatus.expired:
            expired.append(request_id)
            _expire_release(db, request.release_id, actor, at)
    return expired


def _expire_release(db: Engine | Session, release_id: int | None, actor: str, at: datetime) -> None:
    """A release still awaiting the expired approval ends as Expired too."""
    if release_id is None:
        return
    release = get_release(db, release_id)
    if release.status is ReleaseStatus.awaiting_approval:
        finish_release(db, release_id, ReleaseStatus.expired, actor=actor, at=at)


@retry_busy
def close_for_ended_run(
    db: Engine | Session, request_id: int, why: str, *, actor: str = "system"
) -> str | None:
    """Close request ``request_id`` whose run ended without an answer (cancelled, crashed,
    failed while it waited: no gate reads it again, and no answer is taken for an ended run),
    in one transaction: past its time it is expired (and its awaiting release with it), as
    the expiry sweep would; still pending, it is voided and the release still awaiting it
    ends ``cancelled`` with ``why``; otherwise (answered meanwhile, closed) it is left alone.

    Returns:
        ``expired``, ``voided`` or None (nothing done).
    """
    at = utcnow()
    with unit_of_work(db) as session:
        request = approvals.resolve(session, request_id, actor=actor, now=at)
        if request.status is ApprovalStatus.expired:
            _expire_release(session, request.release_id, actor, at)
            return "expired"
        if request.status is not ApprovalStatus.pending:
            return None
        approvals.void_request(session, request_id, why, actor=actor, now=at)
        if request.release_id is not None:
            cancel_awaiting(session, request.release_id, why, actor=actor, at=at)
        return "voided"


def cancel_awaiting(
    db: Engine | Session, release_id: int, why: str, *, actor: str, at: datetime | None = None
) -> bool:
    """End release ``release_id`` as ``cancelled`` with ``why`` if it still awaits an
    approval (its run ended); False if it had moved on."""
    with unit_of_work(db) as session:
        release = get_release(session, release_id)
        if release.status is not ReleaseStatus.awaiting_approval:
            return False
        finish_release(
            session,
            release_id,
            ReleaseStatus.cancelled,
            actor=actor,
            details={"error": why[:500]},
            at=at,
        )
        return True


def screen_answerer(
    db: Engine | Session,
    request_id: int,
    *,
    user: str,
    decision: Decision | str,
    comment: str = "",
    now: datetime | None = None,
) -> None:
    """Check, before a suspended run is woken, that ``user`` may answer ``request_id`` at all
    (the policy's role in the app's space or project, not a self-approval the policy forbids,
    the request still open). A refusal is recorded like any refused answer and nothing is
    resumed; the run's gate checks the accepted answer again.

    Raises:
        PermissionDenied: the user may not answer (recorded in the ledger).
        NotFoundError: no such request.
    """
    at = now or utcnow()
    request = approvals.get_request(db, request_id)
    choice = Decision(decision)
    reason: str | None = None
    if request.status is not ApprovalStatus.pending:
        reason = f"approval request {request_id} is already {request.status.value}"
    else:
        try:
            check_answerer(db, request, user)
        except PermissionDenied as refused:
            reason = refused.message
    if reason is not None:
        _record_refused(db, request_id, user, choice, comment or None, reason, at)
        raise PermissionDenied(reason, hint="the run keeps waiting for an approver with the role")
