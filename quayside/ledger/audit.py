"""The audit log: one event per state change, written in the same transaction as the change.

Append-only twice over: the ORM refuses to update or delete an :class:`AuditEvent` (mapper
events in :mod:`quayside.ledger.models`, bulk and prefixed statements such as
``INSERT OR REPLACE`` refused by ledger sessions) and the database refuses it too (triggers from
migrations 0001 and 0003: no UPDATE, DELETE, TRUNCATE, overwriting or backdated INSERT), so
raw SQL cannot rewrite history. Each event is chained to the one before it by a hash
(:mod:`quayside.ledger.audit_chain`); ``quayside audit verify`` walks the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from quayside.ledger.db import unit_of_work
from quayside.ledger.models import AuditEvent


def record(
    session: Session,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int | None,
    details: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditEvent:
    """Add an audit event to ``session``'s transaction (it commits or rolls back with the
    change it describes).

    Args:
        session: the session holding the state change.
        actor: who did it (user name, token name, ``flow-run:<id>``, ``system``).
        action: dotted verb, e.g. ``release.started``, ``lock.acquired``.
        subject_type: kind of thing changed, e.g. ``release``, ``environment``.
        subject_id: its id or name.
        details: JSON-serializable facts worth keeping.
        at: event time, timezone-aware; default: when the event is written (UTC). A time
            earlier than the last recorded event's is refused when the session flushes.

    Returns:
        The pending AuditEvent (its id, time and hashes are set at flush).
    """
    audit_event = AuditEvent(
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        details=details,
    )
    if at is not None:
        audit_event.at = at
    session.add(audit_event)
    return audit_event


def list_events(
    db: Engine | Session,
    *,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    action: str | None = None,
    limit: int = 100,
) -> Sequence[AuditEvent]:
    """Audit events, newest first.

    Args:
        db: Engine or Session.
        subject_type: only events about this kind of subject.
        subject_id: only events about this subject.
        action: only this action.
        limit: at most this many.

    Returns:
        The events.
    """
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if subject_type is not None:
        query = query.where(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == str(subject_id))
    if action is not None:
        query = query.where(AuditEvent.action == action)
    with unit_of_work(db) as session:
        return session.scalars(query).all()
