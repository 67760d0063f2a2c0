"""Releases: start, run, per-host outcomes, finish; and what is (or was) deployed where.

Each state-changing function is one transaction (or part of the caller's, given a Session)
that writes exactly one audit event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session, noload

from quayside.errors import InputError, LedgerError, NotFoundError
from quayside.ledger import audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.environments import _ensure
from quayside.ledger.models import (
    TERMINAL_RELEASE_STATUSES,
    App,
    Environment,
    HostStatus,
    Release,
    ReleaseHost,
    ReleaseKind,
    ReleaseStatus,
    utcnow,
)

STARTABLE = frozenset({ReleaseStatus.pending, ReleaseStatus.awaiting_approval})


def _for_env(app: str, env: str) -> Select[Release]:
    return (
        select(Release)
        .join(Environment, Release.environment_id == Environment.id)
        .join(App, Environment.app_id == App.id)
        .where(App.name == app, Environment.name == env)
    )


def _get(session: Session, release_id: int, *, for_update: bool = False) -> Release:
    query = select(Release).where(Release.id == release_id)
    if for_update:
        query = query.with_for_update(of=Release)
    found = session.scalars(query).unique().one_or_none()
    if found is None:
        raise NotFoundError(f"release {release_id} is not in the ledger")
    return found


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
            undone = _get(session, rollback_of_id)
            if undone.environment_id != environment.id:
                raise NotFoundError(f"release {rollback_of_id} is not a release of {app}/{env}")
        current = session.scalars(_current_query(app, env)).unique().first()
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
        release = _get(session, release_id, for_update=True)
        if release.status not in STARTABLE:
            raise LedgerError(
                f"release {release_id} is {release.status}, it cannot start running",
                hint="start a new release instead",
            )
        release.status = ReleaseStatus.running
        release.started_at = at or utcnow()
        audit.record(session, actor, "release.running", "release", release.id, None)
        return release


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
        LedgerError: the database refused the change.
    """
    statuses: list[HostStatus] = []
    for outcome in outcomes:
        try:
            statuses.append(HostStatus(outcome.status))
        except ValueError as e:
            raise InputError(f"unknown host status {outcome.status!r}") from e
    with unit_of_work(db) as session:
        release = _get(session, release_id)
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
        release = _get(session, release_id, for_update=True)
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
            undone = _get(session, release.rollback_of_id, for_update=True)
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


@dataclass(frozen=True)
class HostServing:
    """What one host served when a dead run's release was reconciled, for
    :func:`mark_interrupted`.

    Attributes:
        host: host name.
        status: ``switched`` (its ``current`` is this release), ``skipped`` (it still serves
            another one) or ``failed`` (its facts could not be read).
        serves: the release directory its ``current`` pointed at (None: unknown or none).
        message: what was found, for people.
    """

    host: str
    status: HostStatus
    serves: str | None
    message: str


@retry_busy
def mark_interrupted(
    db: Engine | Session,
    release_id: int,
    hosts: Sequence[HostServing],
    *,
    actor: str,
    reason: str,
    summary: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Release | None:
    """End a release its run left unfinished as ``interrupted``, with one row per host saying
    what the host serves (its own facts), in one transaction with one audit event.

    A release that has already finished is left as it is (a crash hook and the sweep at
    ``quayside up`` may both get there): nothing is written and None is returned.

    Args:
        db: Engine or Session.
        release_id: the release.
        hosts: what each host serves now.
        actor: who reconciled it (``reconcile:crash-hook``, ``reconcile:up``, ...).
        reason: why the run is known to be dead (its Prefect state, ...).
        summary: replaces the release's summary (what ``quayside releases`` shows).
        at: the time (default now).

    Returns:
        The interrupted Release, or None if it had already finished.

    Raises:
        NotFoundError: no such release.
        LedgerError: the database refused the change.
    """
    when = at or utcnow()
    with unit_of_work(db) as session:
        release = _get(session, release_id, for_update=True)
        if release.status in TERMINAL_RELEASE_STATUSES:
            return None
        existing = {row.host: row for row in release.hosts}
        for found in hosts:
            row = existing.get(found.host)
            if row is None:
                row = ReleaseHost(release_id=release.id, host=found.host, status=found.status)
                session.add(row)
                release.hosts.append(row)
            row.status = found.status
            row.step = "reconcile"
            row.message = found.message
            row.serves = found.serves
            row.finished_at = row.finished_at or when
        release.status = ReleaseStatus.interrupted
        release.finished_at = when
        if summary is not None:
            release.summary = summary
        release.details = {**(release.details or {}), "interrupted": reason}
        audit.record(
            session,
            actor,
            "release.interrupted",
            "release",
            release.id,
            {
                "reason": reason,
                "flow_run_id": release.flow_run_id,
                "hosts": {h.host: {"status": h.status.value, "serves": h.serves} for h in hosts},
            },
        )
        return release


def running_releases(
    db: Engine | Session, *, app: str | None = None, env: str | None = None
) -> Sequence[Release]:
    """Releases still ``running``, oldest first (of one app/env when both are given): the
    candidates of a reconcile, whose runs may have died.

    Args:
        db: Engine or Session.
        app: app name (with ``env``).
        env: environment name (with ``app``).

    Returns:
        The releases, with their per-host outcomes loaded.
    """
    query = _for_env(app, env) if app is not None and env is not None else select(Release)
    query = query.where(Release.status == ReleaseStatus.running).order_by(Release.id)
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(query).unique().all()


def _current_query(app: str, env: str) -> Select[Release]:
    return (
        _for_env(app, env)
        .where(Release.status == ReleaseStatus.succeeded)
        .order_by(Release.id.desc())
    )


def current_release(
    db: Engine | Session, app: str, env: str, *, kinds: Iterable[ReleaseKind] | None = None
) -> Release | None:
    """What runs in ``app``/``env`` now: its latest succeeded release (of ``kinds``: an app's
    code and its config files are released separately, so what its hosts serve is the latest
    of the git kinds, and its config the latest ``config`` release).

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        kinds: only releases of these kinds (default any).

    Returns:
        The Release, or None if nothing has succeeded there.
    """
    query = _current_query(app, env)
    if kinds is not None:
        query = query.where(Release.kind.in_(list(kinds)))
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(query.limit(1)).unique().first()


def previous_successful(
    db: Engine | Session,
    app: str,
    env: str,
    *,
    before: Release | int | None = None,
    kinds: Iterable[ReleaseKind] | None = None,
) -> Release | None:
    """The release to roll back to: the latest succeeded release older than ``before``.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        before: a release or its id (default the current release).
        kinds: only releases of these kinds (default all).

    Returns:
        The Release, or None if there is none.
    """
    with unit_of_work(db) as session:
        if before is None:
            anchor = session.scalars(_current_query(app, env).limit(1)).unique().first()
            if anchor is None:
                return None
            before_id = anchor.id
        else:
            before_id = before.id if isinstance(before, Release) else before
        query = (
            _for_env(app, env)
            .where(Release.status == ReleaseStatus.succeeded, Release.id < before_id)
            .order_by(Release.id.desc())
            .limit(1)
        )
        if kinds is not None:
            query = query.where(Release.kind.in_([ReleaseKind(k) for k in kinds]))
        return session.scalars(query).unique().first()


def list_releases(
    db: Engine | Session,
    app: str,
    env: str,
    limit: int = 20,
    *,
    status: ReleaseStatus | None = None,
    with_hosts: bool = True,
) -> Sequence[Release]:
    """Releases of ``app`` in ``env``, newest first, with their per-host outcomes loaded.

    Given an Engine it only reads (no write lock: a listing never waits for a busy writer).

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        limit: at most this many.
        status: only releases in this status.
        with_hosts: load the per-host outcomes (False: ``hosts`` stays empty, one query).

    Returns:
        The releases.
    """
    query = _for_env(app, env).order_by(Release.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Release.status == status)
    if not with_hosts:
        query = query.options(noload(Release.hosts))
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(query).unique().all()


def releases_of_run(db: Engine | Session, flow_run_id: str) -> Sequence[Release]:
    """The releases a flow run recorded (usually one), oldest first, with per-host outcomes.

    Args:
        db: Engine or Session.
        flow_run_id: the Prefect flow run id.

    Returns:
        The releases.
    """
    query = select(Release).where(Release.flow_run_id == flow_run_id).order_by(Release.id)
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(query).unique().all()


def get_release(
    db: Engine | Session,
    release: int | str,
    *,
    app: str | None = None,
    env: str | None = None,
) -> Release:
    """One release, by id or by version label.

    Args:
        db: Engine or Session.
        release: the id (an int, or a string of digits when no app/env is given) or a version
            label; a label needs ``app`` and ``env`` and finds the newest release with it.
        app: app name (with a version label).
        env: environment name (with a version label).

    Returns:
        The Release, with its per-host outcomes loaded.

    Raises:
        InputError: a version label without app and env.
        NotFoundError: no such release.
    """
    with unit_of_work(db) as session:
        if isinstance(release, int) or (app is None and env is None and release.isdigit()):
            return _get(session, int(release))
        if app is None or env is None:
            raise InputError(f"finding release {release!r} by version needs the app and env")
        found = (
            session.scalars(
                _for_env(app, env).where(Release.version == release).order_by(Release.id.desc())
            )
            .unique()
            .first()
        )
        if found is None:
            raise NotFoundError(f"no release {release!r} of {app}/{env} in the ledger")
        return found
