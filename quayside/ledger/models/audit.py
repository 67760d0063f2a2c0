"""The ledger's audit log table and the hooks that keep it append-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, event
from sqlalchemy.orm import Mapped, Mapper, ORMExecuteState, mapped_column

from quayside.errors import LedgerError
from quayside.ledger.models.base import Base, utcnow


class AuditEvent(Base):
    """Append-only: the ORM refuses to update or delete these rows
    (:mod:`quayside.ledger.audit`) and so do database triggers created by the migrations.

    Each event is chained to the one before it (migration 0003): ``prev_hash`` is that event's
    ``hash`` and ``hash`` covers this event's fields and ``prev_hash``
    (:mod:`quayside.ledger.audit_chain`, which fills ``id``, ``at`` and both hashes at flush).
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any] | None]
    # unique: two events can never follow the same one (no fork of the chain)
    prev_hash: Mapped[str] = mapped_column(String(64), index=True, unique=True)
    hash: Mapped[str] = mapped_column(String(64))


APPEND_ONLY_HINT = "audit events are append-only; record a new event instead"


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_audit_change(_mapper: Mapper[Any], _connection: Any, target: AuditEvent) -> None:
    raise LedgerError(
        f"audit event {target.id} cannot be changed or deleted", hint=APPEND_ONLY_HINT
    )


@event.listens_for(AuditEvent, "before_insert")
def _refuse_unchained_insert(_mapper: Mapper[Any], _connection: Any, target: AuditEvent) -> None:
    if target.hash is None or target.prev_hash is None:
        raise LedgerError(
            f"audit event {target.action!r} was not chained to the audit log",
            hint="write audit events with quayside.ledger.audit.record in a ledger session "
            "(quayside.ledger.db.session_scope), which chains them when it flushes",
        )


def refuse_bulk_audit_changes(state: ORMExecuteState) -> None:
    """``do_orm_execute`` hook: refuse ORM bulk UPDATE/DELETE statements on AuditEvent, and
    every INSERT statement on it (``INSERT OR REPLACE`` and other prefixes would overwrite
    events; any bulk insert would skip the hash chain) (installed on
    :class:`quayside.ledger.db.LedgerSession`)."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    mapper = state.bind_mapper
    on_audit = mapper is not None and mapper.class_ is AuditEvent
    if not on_audit and getattr(state.statement, "table", None) is not AuditEvent.__table__:
        return
    if not state.is_insert:
        raise LedgerError("bulk UPDATE/DELETE of audit events refused", hint=APPEND_ONLY_HINT)
    prefixes = " ".join(str(p) for p, _dialect in getattr(state.statement, "_prefixes", ()))
    if prefixes:
        raise LedgerError(
            f"INSERT {prefixes} into the audit log refused: it could overwrite recorded events",
            hint=APPEND_ONLY_HINT,
        )
    raise LedgerError(
        "bulk INSERT into the audit log refused: it would skip the hash chain",
        hint="record each event with quayside.ledger.audit.record",
    )
