"""Approval codes: how an approver answers in the Prefect UI without their API token.

An approver who may answer a request (the policy's role in the app's space, not a forbidden
self-approval, not decided yet, the request still open) gets a single-use code for that
request (:func:`issue_code`; ``quayside approvals code RUN`` and ``POST
/api/approvals/{run}/code`` authenticate them with their token first). The approval gate
reads the code from the Prefect UI's form and calls :func:`decide_with_code`: the code names
the approver, is consumed by its use, and the answer is then checked and recorded like any
other (:func:`quayside.auth.approvals.decide_as`). A missing, malformed, wrong, reused,
replaced, expired or foreign code (another request's, or another user's than the form names)
is refused and recorded with the reason; the request stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.auth import codes
from quayside.auth.approvals import Resolution, check_answerer, decide_as, refuse
from quayside.auth.roles import PermissionDenied
from quayside.ledger import approval_codes, approvals
from quayside.ledger.models import ApprovalCode, ApprovalStatus, Decision, utcnow

#: who a refused answer is recorded as when its code matched nobody
ANONYMOUS = "anonymous"
#: how far back other requests' codes are looked at (to say "another request's code")
FOREIGN_LOOKBACK = timedelta(days=31)
#: a request without an expiry (none from a policy has one) lets its codes live this long
DEFAULT_CODE_LIFETIME = timedelta(hours=24)
CODE_HINT = "get a new code: `quayside approvals code RUN_ID` (or POST /api/approvals/RUN_ID/code)"


@dataclass(frozen=True)
class IssuedCode:
    """A code as its approver sees it once; only its hash is stored."""

    code: str
    request_id: int
    user: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedCode(request_id={self.request_id}, user={self.user!r})"


def issue_code(
    db: Engine | Session, request_id: int, *, user: str, now: datetime | None = None
) -> IssuedCode:
    """A new single-use code for authenticated ``user`` to answer ``request_id`` in the
    Prefect UI; their earlier unused code for it stops working.

    Args:
        db: ledger Engine or Session.
        request_id: the pending approval request.
        user: the approver, authenticated by the caller.
        now: issue time (default now).

    Returns:
        The code (display form ``XXXXX-XXXXX``) and when it expires (with the request).

    Raises:
        PermissionDenied: the request is not open, or ``user`` may not answer it (role,
            self-approval, already decided). Nothing is stored then.
        NotFoundError: no such request.
    """
    at = now or utcnow()
    request = approvals.resolve(db, request_id, now=at)
    if request.status is not ApprovalStatus.pending:
        raise PermissionDenied(
            f"approval request {request_id} is already {request.status.value}",
            hint="codes are only issued for requests still waiting for an answer",
        )
    check_answerer(db, request, user)
    if any(d.valid and d.user == user for d in request.decisions):
        raise PermissionDenied(
            f"{user} has already decided approval request {request_id}",
            hint="each approver answers once",
        )
    expires_at = request.expires_at or at + DEFAULT_CODE_LIFETIME
    code = codes.new_code()
    approval_codes.store_code(
        db, request_id, user, code_hash=codes.hash_code(code), expires_at=expires_at, now=at
    )
    return IssuedCode(codes.display(code), request_id, user, expires_at)


def decide_with_code(
    db: Engine | Session,
    request_id: int,
    *,
    code_text: str,
    decision: Decision | str,
    comment: str = "",
    approver: str = "",
    now: datetime | None = None,
) -> Resolution:
    """Answer ``request_id`` with an approval code typed into the Prefect UI's form.

    The code must have been issued for this request, be the newest one of its user, unused
    and unexpired, and belong to ``approver`` when the form names one; it is consumed, and
    the answer is checked and recorded as its user's (:func:`decide_as`). Anything else is
    recorded as a refused answer with the reason (as the code's user when it matched one,
    else as ``anonymous``); the code is never stored or echoed.

    Returns:
        The Resolution.

    Raises:
        InputError: a bad ``decision``.
        NotFoundError: no such request.
    """
    at = now or utcnow()
    approvals.get_request(db, request_id)  # NotFoundError before anything is recorded

    def refused(user: str, reason: str) -> Resolution:
        return refuse(db, request_id, user, decision, comment, reason, now=at)

    if not (code_text or "").strip():
        return refused(ANONYMOUS, f"no approval code was given; {CODE_HINT}")
    canonical = codes.normalize(code_text)
    if canonical is None:
        return refused(
            ANONYMOUS,
            f"that is not an approval code (10 letters and digits, like ABCDE-FGH23); {CODE_HINT}",
        )
    found = _matching(approval_codes.codes_of_request(db, request_id), canonical)
    if found is None:
        since = at - FOREIGN_LOOKBACK
        other = _matching(
            approval_codes.recent_codes_of_other_requests(db, request_id, since=since), canonical
        )
        if other is not None:
            return refused(
                other.user,
                f"that approval code was issued for approval request {other.request_id}, "
                f"not {request_id}",
            )
        return refused(ANONYMOUS, f"wrong approval code; {CODE_HINT}")
    wanted = (approver or "").strip()
    if wanted and wanted != found.user:
        return refused(found.user, f"that approval code is {found.user}'s, not {wanted[:100]}'s")
    if found.replaced_at is not None:
        return refused(found.user, f"that approval code was replaced by a newer one; {CODE_HINT}")
    if found.used_at is not None:
        return refused(found.user, f"that approval code was already used; {CODE_HINT}")
    if found.expires_at <= at:
        return refused(found.user, "that approval code expired with its request")
    if not approval_codes.consume_code(db, found.id, now=at):
        return refused(found.user, f"that approval code was already used; {CODE_HINT}")
    return decide_as(db, request_id, user=found.user, decision=decision, comment=comment, now=at)


def _matching(candidates: Iterable[ApprovalCode], canonical: str) -> ApprovalCode | None:
    for row in candidates:
        if codes.matches(canonical, row.code_hash):
            return row
    return None
