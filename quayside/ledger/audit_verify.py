"""Walking the audit log's hash chain (``quayside audit verify``).

Every event is read in id order and its hash recomputed (:func:`quayside.ledger.audit_chain.
event_hash`): an event whose stored fields no longer give its hash was changed after it was
written; an event whose ``prev_hash`` is not the previous event's hash follows an event that was
removed, inserted or rewritten; an event earlier than the one before it was backdated.

The chain proves the log was not edited by someone who did not also recompute every later hash.
Keep the head hash this prints somewhere the ledger's writers cannot change (a ticket, a chat
message, a notification): a later verify whose chain no longer passes through it shows a rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from quayside.errors import LedgerError
from quayside.ledger.audit_chain import GENESIS, canonical_at, event_hash
from quayside.ledger.db import READ_ONLY
from quayside.ledger.models import AuditEvent

PAGE_SIZE = 1000
"""Events read per query (a long log is never held in memory)."""
TAMPER_HINT = (
    "the audit log was changed outside Quayside after this event was written: keep the "
    "database file as it is for investigation, compare with a backup, and check who can write "
    "to the ledger database"
)


class AuditChainBroken(LedgerError):
    """The audit log's hash chain does not verify; carries the first broken event's id."""

    def __init__(self, event_id: int, problem: str) -> None:
        super().__init__(f"audit event {event_id}: {problem}", hint=TAMPER_HINT)
        self.event_id = event_id
        self.problem = problem


@dataclass(frozen=True)
class ChainReport:
    """A verified chain: how many events, and the hash of the last one (``head``)."""

    count: int
    head: str
    last_id: int | None


def verify_chain(engine: Engine, *, page_size: int = PAGE_SIZE) -> ChainReport:
    """Recompute the audit log's hash chain from the first event to the last.

    Args:
        engine: the ledger engine.
        page_size: events read per query.

    Returns:
        The count and the head hash (:data:`~quayside.ledger.audit_chain.GENESIS` when empty).

    Raises:
        AuditChainBroken: the first event that does not verify, with what is wrong.
    """
    count = 0
    prev_hash = GENESIS
    prev_id: int | None = None
    prev_at: datetime | None = None
    # one read-only transaction: no write lock (SQLite reads a WAL snapshot), writers go on
    with engine.execution_options(**{READ_ONLY: True}).connect() as connection:
        while True:
            query = select(AuditEvent).order_by(AuditEvent.id).limit(page_size)
            if prev_id is not None:
                query = query.where(AuditEvent.id > prev_id)
            page = connection.execute(query).all()
            for row in page:
                expected = event_hash(
                    id=row.id,
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    subject_type=row.subject_type,
                    subject_id=row.subject_id,
                    details=row.details,
                    prev_hash=row.prev_hash,
                )
                if row.hash != expected:
                    raise AuditChainBroken(
                        row.id,
                        "its fields do not match its hash (the row was changed after it was "
                        "written)",
                    )
                if row.prev_hash != prev_hash:
                    before = "the start of the log" if prev_id is None else f"event {prev_id}"
                    raise AuditChainBroken(
                        row.id,
                        f"its prev_hash is not the hash of {before} (an event before it was "
                        "removed, inserted or rewritten)",
                    )
                if prev_at is not None and row.at < prev_at:
                    raise AuditChainBroken(
                        row.id,
                        f"backdated: {canonical_at(row.at)} is earlier than event {prev_id} "
                        f"({canonical_at(prev_at)})",
                    )
                count += 1
                prev_hash, prev_id, prev_at = row.hash, row.id, row.at
            if len(page) < page_size:
                return ChainReport(count=count, head=prev_hash, last_id=prev_id)
