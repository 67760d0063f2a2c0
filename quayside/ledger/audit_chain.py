"""The audit log's hash chain: every event carries the hash of the event before it.

``hash = sha256(canonical JSON of the event's id, at, actor, action, subject_type, subject_id,
details and prev_hash)``; the first event's ``prev_hash`` is :data:`GENESIS`. A ledger session
fills ``id``, ``at``, ``prev_hash`` and ``hash`` of new events when it flushes
(:func:`chain_new_events`), after serializing appenders so that two writers never continue the
same event: on SQLite every ledger transaction already starts with ``BEGIN IMMEDIATE`` (one
writer at a time); on PostgreSQL the flush takes a transaction-level advisory lock
(:data:`CHAIN_LOCK_KEY`, also taken by the insert trigger) and the unique index on
``prev_hash`` refuses a fork even from a writer that skipped the lock.

Database triggers (migration 0003) refuse an insert that does not continue the chain: an id not
above the last one (so ``INSERT OR REPLACE`` cannot overwrite an event), a ``prev_hash`` that is
not the last event's hash, or an ``at`` earlier than the last event's (backdating).
:mod:`quayside.ledger.audit_verify` recomputes the chain (``quayside audit verify``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from quayside.errors import LedgerError
from quayside.ledger.models import AuditEvent, utcnow

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""
CHAIN_LOCK_KEY = 0x5155_4159_4155_4454
"""PostgreSQL advisory lock key serializing appends to the chain (ASCII ``QUAYAUDT``)."""
BACKDATED_HINT = "record events as they happen: leave `at` unset and the ledger stamps it"


def canonical_at(at: datetime) -> str:
    """``at`` as hashed: UTC, microseconds, ``Z`` (a naive value is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    details: Any,
    prev_hash: str,
) -> str:
    """The hash of one audit event, chained to ``prev_hash``.

    ``details`` is hashed as the database gives it back (a JSON round trip: tuples become
    lists, keys strings), so the hash computed before the insert is the one a later
    verification computes from the stored row.

    Returns:
        64 lowercase hex digits.
    """
    fields = {
        "id": id,
        "at": canonical_at(at),
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "details": json.loads(json.dumps(details)),
        "prev_hash": prev_hash,
    }
    material = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def chain_new_events(session: Session, _flush_context: Any, _instances: Any) -> None:
    """``before_flush`` hook of ledger sessions: number, stamp and hash the session's new
    audit events, in the order they were added, after the last event in the database.

    An event without ``at`` gets the current time, or the last event's time if that is later
    (another machine's clock); an explicit ``at`` earlier than the last event's is refused.

    Raises:
        LedgerError: an event sets its own id or hashes, or is backdated.
    """
    new = [obj for obj in session.new if isinstance(obj, AuditEvent)]
    if not new:
        return
    new.sort(key=lambda obj: inspect(obj).insert_order or 0)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    tail = connection.execute(
        select(AuditEvent.id, AuditEvent.hash, AuditEvent.at)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    last_id, prev_hash, last_at = (tail[0], tail[1], tail[2]) if tail else (0, GENESIS, None)
    now = utcnow()
    for audit_event in new:
        if (
            audit_event.id is not None
            or audit_event.hash is not None
            or audit_event.prev_hash is not None
        ):
            raise LedgerError(
                f"audit event {audit_event.action!r} sets its own id or hash",
                hint="leave id, prev_hash and hash unset: the ledger assigns them in order",
            )
        if audit_event.at is None:
            audit_event.at = now if last_at is None else max(now, last_at)
        elif audit_event.at.tzinfo is None:
            raise LedgerError(
                f"audit event {audit_event.action!r}: naive time {audit_event.at.isoformat()}",
                hint="pass a timezone-aware UTC datetime",
            )
        elif last_at is not None and audit_event.at < last_at:
            raise LedgerError(
                f"audit event {audit_event.action!r} is backdated: "
                f"{canonical_at(audit_event.at)} is earlier than the last event "
                f"({canonical_at(last_at)})",
                hint=BACKDATED_HINT,
            )
        last_id += 1
        audit_event.id = last_id
        audit_event.prev_hash = prev_hash
        audit_event.hash = event_hash(
            id=audit_event.id,
            at=audit_event.at,
            actor=audit_event.actor,
            action=audit_event.action,
            subject_type=audit_event.subject_type,
            subject_id=audit_event.subject_id,
            details=audit_event.details,
            prev_hash=prev_hash,
        )
        prev_hash = audit_event.hash
        last_at = audit_event.at
