"""Reading releases: what runs in an environment now, what to roll back to, listings, one
release by id or version, the releases of a flow run and those still running.

Nothing here writes. :func:`load_release` and the ``select_*`` queries are shared with the
writes (:mod:`quayside.ledger.releases`, :mod:`quayside.ledger.release_interruptions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session, raiseload

from quayside.errors import InputError, NotFoundError
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import App, Environment, Release, ReleaseKind, ReleaseStatus


def select_of_env(app: str, env: str) -> Select[Release]:
    """The releases of ``app`` in ``env`` (a query to narrow further)."""
    return (
        select(Release)
        .join(Environment, Release.environment_id == Environment.id)
        .join(App, Environment.app_id == App.id)
        .where(App.name == app, Environment.name == env)
    )


def load_release(session: Session, release_id: int, *, for_update: bool = False) -> Release:
    """Release ``release_id`` in ``session`` (row-locked with ``for_update``, where the
    database can), or NotFoundError."""
    query = select(Release).where(Release.id == release_id)
    if for_update:
        query = query.with_for_update(of=Release)
    found = session.scalars(query).unique().one_or_none()
    if found is None:
        raise NotFoundError(f"release {release_id} is not in the ledger")
    return found


def select_current(app: str, env: str) -> Select[Release]:
    """The succeeded releases of ``app`` in ``env``, newest (the current one) first."""
    return (
        select_of_env(app, env)
        .where(Release.status == ReleaseStatus.succeeded)
        .order_by(Release.id.desc())
    )


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
    query = select_of_env(app, env) if app is not None and env is not None else select(Release)
    query = query.where(Release.status == ReleaseStatus.running).order_by(Release.id)
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(query).unique().all()


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
    query = select_current(app, env)
    if kinds is not None:
        query = query.where(Release.kind.in_(list(kinds)))
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(query.limit(1)).unique().first()


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
        with_hosts: load the per-host outcomes (False: one query; ``hosts`` is not loaded
            and reading it raises).

    Returns:
        The releases.
    """
    query = select_of_env(app, env).order_by(Release.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Release.status == status)
    if not with_hosts:
        query = query.options(raiseload(Release.hosts))
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
            return load_release(session, int(release))
        if app is None or env is None:
            raise InputError(f"finding release {release!r} by version needs the app and env")
        found = (
            session.scalars(
                select_of_env(app, env)
                .where(Release.version == release)
                .order_by(Release.id.desc())
            )
            .unique()
            .first()
        )
        if found is None:
            raise NotFoundError(f"no release {release!r} of {app}/{env} in the ledger")
        return found
