"""Recording a release: start, running, per-host outcomes, finish.

Each function is one transaction (or part of the caller's, given a Session) that writes
exactly one audit event (per host, for host outcomes). Reading releases back is
:mod:`quayside.ledger.release_queries`; ending one whose run died,
:mod:`quayside.ledger.release_interruptions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from quayside.errors import InputError, LedgerError, NotFoundError
from quayside.ledger import audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.environments import _ensure
from quayside.ledger.models import (
    TERMINAL_RELEASE_STATUSES,
    HostStatus,
    Release,
    ReleaseHost,
    ReleaseKind,
    ReleaseStatus,
    utcnow,
)
from quayside.ledger.release_queries import load_release, select_current

STARTABLE = frozenset({ReleaseStatus.pending, ReleaseStatus.awaiting_approval})


@retry_busy
def start_release(
    db: Engine | Session,
    app: str,
    env: str,
    kind: ReleaseKind | str,
    *,
    requested_by: str,
    version: str | None = None,
    ref: str | None = None,
    commit_sha: str | None = None,
    image_digest: str | None = None,
    flow_run_id: str | None = None,
    artifact_location: str | None = None,
    manifest_digest: str | None = None,
    rollback_of_id: int | None = None,
    status: ReleaseStatus | str = ReleaseStatus.pending,
    summary: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> Release:
    """Record a new release of ``app`` to ``env`` (app and environment are created if new).

    ``previous_release_id`` is set to the environment's current release.

    Args:
        db: Engine (own transaction) or Session (caller's transaction).
        app: app name.
        env: environment name.
        kind: deploy, rollback, image, config, plugin or hello.
        requested_by: who asked for it.
        version: the human label (tag or version).
        ref: git ref.
        commit_sha: resolved commit.
        image_digest: image digest for image releases.
        flow_run_id: the Prefect flow run doing the work.
        artifact_location: where the built artifact is kept.
        manifest_digest: digest of the release manifest.
        rollback_of_id: for rollbacks, the release being undone.
        status: ``pending`` or ``awaiting_approval``.
        summary: JSON summary for listings.
        details: JSON details.

    Returns:
        The new Release (id set).

    Raises:
        InputError: unknown kind, a starting status other than pending/awaiting_approval, or a
            rollback without ``rollback_of_id``.
        NotFoundError: ``rollback_of_id`` names no release of this app and environment.
        LedgerError: the database refused the change; nothing was written.
    """
    try:
        kind = ReleaseKind(kind)
    except ValueError as e:
        raise InputError(
            f"unknown release kind {kind!r}; use one of {', '.join(k.value for k in ReleaseKind)}"
        ) from e
    try:
        status = ReleaseStatus(status)
    except ValueError as e:
        raise InputError(f"unknown release status {status!r}") from e
    if status not in STARTABLE:
        raise InputError(f"a release starts as pending or awaiting_approval, not {status}")
    if kind is ReleaseKind.rollback and rollback_of_id is None:
        raise InputError("a rollback release needs rollback_of_id (the release it undoes)")
    with unit_of_work(db) as session:
        environment, created = _ensure(session, app, env)
        if rollback_of_id is not None:
            undone = load_release(session, rollback_of_id)
            if undone.environment_id != environment.id:
                raise NotFoundError(f"release {rollback_of_id} is not a release of {app}/{env}")
        current = session.scalars(select_current(app, env)).unique().first()
        release = Release(
            environment=environment,
            kind=kind,
            version=version,
            ref=ref,
            commit_sha=commit_sha,
            image_digest=image_digest,
            status=status,
            requested_by=requested_by,
            flow_run_id=flow_run_id,
            created_at=utcnow(),
            previous_release_id=current.id if current else None,
            rollback_of_id=rollback_of_id,
            artifact_location=artifact_location,
            manifest_digest=manifest_digest,
            summary=summary,
            details=details,
        )
        session.add(release)
        session.flush()
        audit.record(
            session,
            requested_by,
            "release.started",
            "release",
            release.id,
            {
                "app": app,
                "env": env,
                "kind": kind.value,
                "version": version,
                "status": status.value,
                "flow_run_id": flow_run_id,
                "previous_release_id": release.previous_release_id,
                "created_environment": created,
            },
        )
        return release


@retry_busy
def mark_running(
    db: Engine | Session, release_id: int, *, actor: str = "system", at: datetime | None = None
) -> Release:
    """Move a pending (or approved) release to ``running`` and set ``started_at``.

    Args:
        db: Engine or Session.
        release_id: the release.
        actor: who, for the audit log (e.g. ``flow-run:<id>``).
        at: start time (default now).

    Returns:
        The updated Release.

    Raises:
        NotFoundError: no such release.
        LedgerError: the release is not pending or awaiting approval.
    """
    with unit_of_work(db) as session:
        release = load_release(session, release_id, for_update=True)
        if release.status not in STARTABLE:
            raise LedgerError(
                f"release {release_id} is {release.status}, it cannot start running",
                hint="start a new release instead",
            )
        release.status = ReleaseStatus.running
        release.started_at = at or utcnow()
        audit.record(session, actor, "release.running", "release", release.id, None)
        return release


@retry_busy
def start_running_release(
    db: Engine | Session,
    app: str,
    env: str,
    kind: ReleaseKind | str,
    *,
    requested_by: str,
    actor: str | None = None,
    **fields: Any,
) -> Release:
    """Record a new release and mark it ``running``, in one transaction: what a run writes as
    it starts applying. Given an Engine, a ledger busy past one attempt's timeout is tried
    again (a busy ledger at the start of a run must not fail the deploy); a failed attempt
    wrote nothing, so trying again records one release.

    Args:
        db: Engine (own transaction, retried while busy) or Session (caller's transaction).
        app: app name.
        env: environment name.
        kind: the release kind.
        requested_by: who asked for it.
        actor: who, for the ``release.running`` audit event (default ``requested_by``).
        **fields: more columns, as :func:`start_release` takes them (``version``, ``ref``,
            ``flow_run_id``, ``details``, ...).

    Returns:
        The new Release, running (id set).

    Raises:
        InputError: as :func:`start_release`.
        LedgerError: the database refused the change, or stayed busy past the budget;
            nothing was written.
    """
    with unit_of_work(db) as session:
        release = start_release(session, app, env, kind, requested_by=requested_by, **fields)
        return mark_running(session, release.id, actor=actor or requested_by)


@dataclass(frozen=True)
class HostOutcome:
    """What happened on one host, for :func:`record_host_outcomes`."""

    host: str
    status: HostStatus | str
    step: str | None = None
    message: str | None = None
    bytes_sent: int | None = None
    duration_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def record_host_outcome(
    db: Engine | Session,
    release_id: int,
    host: str,
    status: HostStatus | str,
    *,
    step: str | None = None,
    message: str | None = None,
    bytes_sent: int | None = None,
    duration_s: float | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    actor: str = "system",
) -> ReleaseHost:
    """Record (or update) what happened on ``host`` for a release; the latest call wins, so a
    retried host keeps one row.

    Args:
        db: Engine or Session.
        release_id: the release.
        host: host name.
        status: pending, running, succeeded, failed, skipped or rolled_back.
        step: the step reached (e.g. ``upload``, ``switch``, ``health``).
        message: what went wrong or a note.
        bytes_sent: bytes transferred to the host.
        duration_s: time spent on the host.
        started_at: when work on the host began.
        finished_at: when it ended.
        actor: who, for the audit log.

    Returns:
        The ReleaseHost row.

    Raises:
        InputError: unknown status.
        NotFoundError: no such release.
        LedgerError: the database refused the change.
    """
    outcome = HostOutcome(
        host, status, step, message, bytes_sent, duration_s, started_at, finished_at
    )
    return record_host_outcomes(db, release_id, [outcome], actor=actor)[0]


@retry_busy
def record_host_outcomes(
    db: Engine | Session,
    release_id: int,
    outcomes: Sequence[HostOutcome],
    *,
    actor: str = "system",
) -> list[ReleaseHost]:
    """:func:`record_host_outcome` for many hosts of one release at once: one transaction,
    the existing rows read in one query, one audit event per host.

    Raises:
        InputError: an unknown status (nothing is recorded).
        NotFoundError: no such release.
        LedgerError: the database refused the change, or the release was interrupted (its
            rows say what the hosts serve, read from them; a dying run's late writes must
            not replace them).
    """
    statuses: list[HostStatus] = []
    for outcome in outcomes:
        try:
            statuses.append(HostStatus(outcome.status))
        except ValueError as e:
            raise InputError(f"unknown host status {outcome.status!r}") from e
    with unit_of_work(db) as session:
        release = load_release(session, release_id)
        if release.status is ReleaseStatus.interrupted:
            raise LedgerError(
                f"release {release_id} was interrupted: its host rows say what the hosts "
                "serve and are not replaced"
            )
        hosts = [o.host for o in outcomes]
        existing = {
            row.host: row
            for row in session.scalars(
                select(ReleaseHost).where(
                    ReleaseHost.release_id == release.id, ReleaseHost.host.in_(hosts)
                )
            )
        }
        rows: list[ReleaseHost] = []
        for outcome, status in zip(outcomes, statuses, strict=True):
            row = existing.get(outcome.host)
            if row is None:
                row = ReleaseHost(release_id=release.id, host=outcome.host, status=status)
                session.add(row)
                existing[outcome.host] = row
            row.status = status
            row.step = outcome.step
            row.message = outcome.message
            row.bytes_sent = outcome.bytes_sent
            row.duration_s = outcome.duration_s
            if outcome.started_at is not None:
                row.started_at = outcome.started_at
            row.finished_at = outcome.finished_at
            rows.append(row)
            audit.record(
                session,
                actor,
                "release.host_outcome",
                "release",
                release.id,
                {
                    "host": outcome.host,
                    "status": status.value,
                    "step": outcome.step,
                    "message": outcome.message,
                },
            )
        session.flush()
        return rows


@retry_busy
def finish_release(
    db: Engine | Session,
    release_id: int,
    status: ReleaseStatus | str,
    *,
    actor: str = "system",
    summary: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Release:
    """End a release with a terminal status and set ``finished_at``.

    When a rollback succeeds, the release it undid becomes ``rolled_back`` in the same
    transaction (so the current release is the rollback).

    Args:
        db: Engine or Session.
        release_id: the release.
        status: succeeded, failed, rolled_back, cancelled or expired.
        actor: who, for the audit log.
        summary: replaces the summary if given.
        details: merged into the details if given.
        at: finish time (default now).

    Returns:
        The updated Release.

    Raises:
        InputError: not a terminal status.
        NotFoundError: no such release.
        LedgerError: the release has already finished.
    """
    try:
        status = ReleaseStatus(status)
    except ValueError as e:
        raise InputError(f"unknown release status {status!r}") from e
    if status not in TERMINAL_RELEASE_STATUSES:
        raise InputError(
            f"{status} is not a final status; use one of "
            + ", ".join(sorted(s.value for s in TERMINAL_RELEASE_STATUSES))
        )
    with unit_of_work(db) as session:
        release = load_release(session, release_id, for_update=True)
        if release.status in TERMINAL_RELEASE_STATUSES:
            raise LedgerError(f"release {release_id} already finished as {release.status}")
        release.status = status
        release.finished_at = at or utcnow()
        if summary is not None:
            release.summary = summary
        if details is not None:
            release.details = {**(release.details or {}), **details}
        undone_id: int | None = None
        if (
            status is ReleaseStatus.succeeded
            and release.kind is ReleaseKind.rollback
            and release.rollback_of_id is not None
        ):
            undone = load_release(session, release.rollback_of_id, for_update=True)
            if undone.status is ReleaseStatus.succeeded:
                undone.status = ReleaseStatus.rolled_back
                undone_id = undone.id
        audit.record(
            session,
            actor,
            "release.finished",
            "release",
            release.id,
            {"status": status.value, "rolled_back_release_id": undone_id},
        )
        return release
