"""Ledger tables the triggers write: who submitted each flow run, and the signed requests
already accepted (replay protection)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from quayside.ledger.models.base import Base, str_enum, utcnow


class SubmissionStatus(StrEnum):
    """Where a submitted run stands, as far as its authority goes."""

    submitted = "submitted"
    started = "started"
    refused = "refused"
    cancelled = "cancelled"


class RunSubmission(Base):
    """Who started a flow run through a trigger (gateway, chat, hooks, CLI with a token), and
    what for (migration 0004). The run checks its submitter's rights again when it starts (a
    scheduled run may start days later), and revoking a user's role cancels their pending
    scheduled runs. The principal is the authenticated caller, never a name a caller sent."""

    __tablename__ = "run_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_run_id: Mapped[str] = mapped_column(String(64), unique=True)
    deployment: Mapped[str] = mapped_column(String(200))
    # the rule it was authorized under (the catalogue's scope and minimum role), applied again
    # to the inventory and roles of the day when the run starts
    scope_kind: Mapped[str] = mapped_column(String(16))
    minimum_role: Mapped[str] = mapped_column(String(16))
    principal: Mapped[str] = mapped_column(String(200), index=True)
    via: Mapped[str] = mapped_column(String(50))
    app: Mapped[str | None] = mapped_column(String(200))
    env: Mapped[str | None] = mapped_column(String(200))
    scheduled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[SubmissionStatus] = mapped_column(
        str_enum(SubmissionStatus, 16), default=SubmissionStatus.submitted, index=True
    )
    reason: Mapped[str | None] = mapped_column(Text)


class SeenRequest(Base):
    """A signed request (or a message id) a trigger already accepted, kept until it could no
    longer be replayed (``expires_at``, the end of its signature window plus clock skew), so
    every gateway process and a restarted one refuse it (:mod:`quayside.ledger.replays`).
    ``digest`` is the SHA-256 of the value, unique per ``kind``."""

    __tablename__ = "seen_requests"
    __table_args__ = (UniqueConstraint("kind", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    digest: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
