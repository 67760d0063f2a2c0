"""The rows of ``GET /api/releases``: a page of releases across apps, newest first, in one SQL
statement.

A page of 200 releases read through the ORM would load each release's environment, app and
host rows; here the per-host outcomes and the approvers come back as aggregated strings of
correlated subqueries (``string_agg`` on PostgreSQL, ``group_concat`` on SQLite), evaluated
only for the rows of the page, which the primary key's index orders. Who may see which app
is not decided here: the route passes the apps to list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, String, cast, func, select
from sqlalchemy.orm import Session

from quayside.ledger.db import unit_of_work
from quayside.ledger.models import (
    App,
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    Decision,
    Environment,
    Release,
    ReleaseHost,
    ReleaseStatus,
)

SEPARATOR = "\x1f"
"""Joins the aggregated values (the unit separator: no user or status name contains it)."""


@dataclass(frozen=True)
class ReleaseRow:
    """One release as the listing shows it.

    Attributes:
        host_outcomes: host status -> how many hosts ended (or are) in it.
        approved_by: who approved it (valid approvals of its approved requests, or of the
            request that covered it: a promotion's image release), sorted.
    """

    id: int
    app: str
    env: str
    kind: str
    version: str | None
    ref: str | None
    commit_sha: str | None
    status: str
    requested_by: str | None
    approved_by: tuple[str, ...]
    flow_run_id: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    host_outcomes: dict[str, int]


def _split(text: str | None) -> list[str]:
    return [part for part in (text or "").split(SEPARATOR) if part]


def release_page(
    db: Engine | Session,
    *,
    apps: Collection[str] | None,
    env: str | None = None,
    status: ReleaseStatus | None = None,
    before: int | None = None,
    limit: int = 20,
) -> list[ReleaseRow]:
    """Releases newest first (by id), at most ``limit``, older than release ``before``.

    Args:
        db: Engine (a read-only transaction) or Session.
        apps: only releases of these apps (None: every app; empty: none).
        env: only environments of this name.
        status: only releases in this status.
        before: only releases with a smaller id (the last id of the previous page).
        limit: at most this many.

    Returns:
        The rows, read by one statement.
    """
    if apps is not None and not apps:
        return []
    hosts = (
        select(func.aggregate_strings(cast(ReleaseHost.status, String), SEPARATOR))
        .where(ReleaseHost.release_id == Release.id)
        .correlate(Release)
        .scalar_subquery()
    )
    approvers = (
        select(func.aggregate_strings(ApprovalDecision.user, SEPARATOR))
        .join(ApprovalRequest, ApprovalDecision.request_id == ApprovalRequest.id)
        .where(
            ApprovalRequest.release_id == Release.id,
            ApprovalRequest.status == ApprovalStatus.approved,
            ApprovalDecision.decision == Decision.approve,
            ApprovalDecision.valid.is_(True),
        )
        .correlate(Release)
        .scalar_subquery()
    )
    query = (
        select(
            Release.id,
            App.name,
            Environment.name,
            Release.kind,
            Release.version,
            Release.ref,
            Release.commit_sha,
            Release.status,
            Release.requested_by,
            approvers,
            Release.flow_run_id,
            Release.created_at,
            Release.started_at,
            Release.finished_at,
            hosts,
            Release.details,
        )
        .join(Environment, Release.environment_id == Environment.id)
        .join(App, Environment.app_id == App.id)
        .order_by(Release.id.desc())
        .limit(limit)
    )
    if apps is not None:
        query = query.where(App.name.in_(sorted(apps)))
    if env is not None:
        query = query.where(Environment.name == env)
    if status is not None:
        query = query.where(Release.status == status)
    if before is not None:
        query = query.where(Release.id < before)
    with unit_of_work(db, read_only=True) as session:
        rows = session.execute(query).all()
    return [
        ReleaseRow(
            id=row[0],
            app=row[1],
            env=row[2],
            kind=row[3].value,
            version=row[4],
            ref=row[5],
            commit_sha=row[6],
            status=row[7].value,
            requested_by=row[8],
            approved_by=tuple(sorted(set(_split(row[9])) or _covering_approvers(row[15]))),
            flow_run_id=row[10],
            created_at=row[11],
            started_at=row[12],
            finished_at=row[13],
            host_outcomes=dict(sorted(Counter(_split(row[14])).items())),
        )
        for row in rows
    ]


def _covering_approvers(details: Any) -> set[str]:
    """Who approved the request that covered a release started by another gate of its run
    (a promotion's image release: ``details["approval"]``, see
    :mod:`quayside.release.covering_approval`); its own requests name nobody."""
    approval = details.get("approval") if isinstance(details, dict) else None
    found = approval.get("approvers") if isinstance(approval, dict) else None
    return {str(a) for a in found} if isinstance(found, list) else set()
