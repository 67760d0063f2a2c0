"""Stored approval codes: one live code per approver and request, hashes only.

Issuing a code replaces the approver's earlier live code for the same request; a code is
consumed by one guarded UPDATE (unused, not replaced, not expired), so two answers racing with
the same code cannot both count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from quayside.ledger import audit
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import ApprovalCode, utcnow

#: codes of other requests looked at to tell "another request's code" from "wrong code"
OTHER_REQUESTS_LIMIT = 500


def store_code(
    db: Engine | Session,
    request_id: int,
    user: str,
    *,
    code_hash: str,
    expires_at: datetime,
    now: datetime | None = None,
) -> ApprovalCode:
    """Store a new code of ``user`` for ``request_id`` and retire their earlier live one.

    Args:
        db: Engine or Session.
        request_id: the approval request it answers.
        user: the approver it belongs to.
        code_hash: :func:`quayside.auth.codes.hash_code` of the code.
        expires_at: when it stops working (the request's expiry).
        now: issue time (default now).

    Returns:
        The stored row.
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        session.execute(
            update(ApprovalCode)
            .where(
                ApprovalCode.request_id == request_id,
                ApprovalCode.user == user,
                ApprovalCode.used_at.is_(None),
                ApprovalCode.replaced_at.is_(None),
            )
            .values(replaced_at=at)
        )
        row = ApprovalCode(
            request_id=request_id,
            user=user,
            code_hash=code_hash,
            created_at=at,
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            user,
            "approval.code_issued",
            "approval_request",
            request_id,
            {"code_id": row.id, "expires_at": expires_at.isoformat()},
        )
        return row


def codes_of_request(db: Engine | Session, request_id: int) -> Sequence[ApprovalCode]:
    """Every code issued for ``request_id``, newest first (used, replaced and expired too)."""
    with unit_of_work(db, read_only=True) as session:
        query = (
            select(ApprovalCode)
            .where(ApprovalCode.request_id == request_id)
            .order_by(ApprovalCode.id.desc())
        )
        return list(session.scalars(query))


def recent_codes_of_other_requests(
    db: Engine | Session, request_id: int, *, since: datetime
) -> Sequence[ApprovalCode]:
    """Codes issued since ``since`` for requests other than ``request_id``, newest first
    (at most :data:`OTHER_REQUESTS_LIMIT`)."""
    with unit_of_work(db, read_only=True) as session:
        query = (
            select(ApprovalCode)
            .where(ApprovalCode.request_id != request_id, ApprovalCode.created_at >= since)
            .order_by(ApprovalCode.id.desc())
            .limit(OTHER_REQUESTS_LIMIT)
        )
        return list(session.scalars(query))


def consume_code(db: Engine | Session, code_id: int, *, now: datetime | None = None) -> bool:
    """Mark code ``code_id`` used, in one UPDATE guarded on it being unused, not replaced and
    not expired.

    Returns:
        True if this call consumed it; False if it was used, replaced or expired already.
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        result = session.execute(
            update(ApprovalCode)
            .where(
                ApprovalCode.id == code_id,
                ApprovalCode.used_at.is_(None),
                ApprovalCode.replaced_at.is_(None),
                ApprovalCode.expires_at > at,
            )
            .values(used_at=at)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
