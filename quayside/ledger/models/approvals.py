"""Ledger tables of approvals: requests, each person's decision, and single-use approval
codes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quayside.ledger.models.base import Base, str_enum, utcnow


class ApprovalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"
    voided = "voided"  # what it approved changed (another plan, version or run)


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"


class ApprovalRequest(Base):
    __tablename__ = "approval_requests"
    __table_args__ = (
        CheckConstraint("required_approvals >= 1", name="required_approvals_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL"), index=True
    )
    app: Mapped[str] = mapped_column(String(200))
    env: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[ApprovalStatus] = mapped_column(str_enum(ApprovalStatus), index=True)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # The policy the request was opened under (migration 0002), so every answer path (the
    # paused flow, the gateway's pre-approval, chat) checks the same thing. NULL on rows from
    # before 0002: checked with the production default (MASTER, no self-approval).
    space: Mapped[str | None] = mapped_column(String(200))
    approver_role: Mapped[str | None] = mapped_column(String(16))
    allow_self_approval: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # What the request approves (migration 0004): the gate accepts a request only for its own
    # flow run, app, env and this exact version; ``plan_hash`` binds a gate-opened request to
    # the plan it showed (a changed plan voids it). NULL on older rows: never accepted by a
    # gate, which opens a new request instead.
    version: Mapped[str | None] = mapped_column(String(200))
    plan_hash: Mapped[str | None] = mapped_column(String(64))
    # Who may not approve beyond the requester, user -> why (migration 0008): the authors of
    # the config versions a publish releases when the policy says
    # ``allow_editor_approval: false``. NULL: nobody but the requester.
    excluded_approvers: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    # Which gate of its run the request answers (migration 0009): a canary publish asks
    # before the canary (``release``, every run's first gate) and before the rest (``rest``);
    # each gate has its own request, codes and decisions.
    gate: Mapped[str] = mapped_column(String(64), default="release", server_default="release")

    decisions: Mapped[list[ApprovalDecision]] = relationship(
        back_populates="request",
        cascade="all, delete-orphan",
        order_by="ApprovalDecision.id",
        lazy="selectin",
    )


class ApprovalDecision(Base):
    """One person's answer to an approval request; ``valid`` is False (with ``reason``) when it
    was refused, e.g. a self-approval, a second vote or a vote after the request closed."""

    __tablename__ = "approval_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(String(200))
    decision: Mapped[Decision] = mapped_column(str_enum(Decision, 16))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str | None] = mapped_column(Text)

    request: Mapped[ApprovalRequest] = relationship(back_populates="decisions")


class ApprovalCode(Base):
    """A single-use approval code (migration 0005): lets ``user`` answer ``request_id`` once
    in the Prefect UI's form without their long-lived token. Only a salted hash of the code is
    stored; it expires with the request, is replaced by a newer code for the same user and
    request, and is consumed by its first use (:mod:`quayside.ledger.approval_codes`)."""

    __tablename__ = "approval_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("approval_requests.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(String(200))
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    replaced_at: Mapped[datetime | None]
