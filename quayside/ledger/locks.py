"""The deploy lock: one lease per app+environment.

Acquiring is one atomic ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: the row is
inserted if absent, taken over if its lease has expired (or already belongs to the same flow
run, so a retried task gets it back), and left alone otherwise. PostgreSQL locks the
conflicting row while it decides and SQLite serializes writers, so of two concurrent
acquirers exactly one wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, or_, select
from sqlalchemy.orm import Session

from quayside.errors import LedgerError, LockHeldError
from quayside.ledger import audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import DeployLock, utcnow

DEFAULT_LEASE_S = 30 * 60


def _held_error(lock: DeployLock, app: str, env: str) -> LockHeldError:
    version = f" deploying {lock.version}" if lock.version else ""
    run = f" (flow run {lock.flow_run_id})" if lock.flow_run_id else ""
    return LockHeldError(
        f"{app}/{env} is locked by {lock.holder}{version}{run} since "
        f"{lock.acquired_at.isoformat()}; the lock expires at {lock.expires_at.isoformat()}",
        hint="wait for that run to finish, or release the lock if it is stuck "
        "(it is taken over automatically once it expires)",
    )


@retry_busy
def acquire(
    db: Engine | Session,
    app: str,
    env: str,
    holder: str,
    *,
    flow_run_id: str | None,
    version: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    now: datetime | None = None,
) -> DeployLock:
    """Take the deploy lock of ``app``/``env`` for ``lease_s`` seconds.

    An expired lease is taken over; a lease held by the same ``flow_run_id`` is renewed (a
    retried task gets its own lock back).

    Args:
        db: Engine (own transaction) or Session (caller's transaction).
        app: app name.
        env: environment name.
        holder: who takes it (user, or ``flow-run:<name>``), shown to whoever is refused.
        flow_run_id: the flow run that holds it.
        version: what is being released, shown to whoever is refused.
        lease_s: lease length in seconds; renew before it ends.
        now: the current time (default now, UTC).

    Returns:
        The DeployLock now held.

    Raises:
        LockHeldError: someone else holds an unexpired lease; the message names the holder,
            version, since when and when it expires.
        LedgerError: the database refused the change.
    """
    at = now or utcnow()
    values = {
        "app": app,
        "env": env,
        "holder": holder,
        "flow_run_id": flow_run_id,
        "version": version,
        "acquired_at": at,
        "expires_at": at + timedelta(seconds=lease_s),
    }
    with unit_of_work(db) as session:
        dialect = session.get_bind().dialect.name
        insert: Any
        if dialect == "postgresql":  # imported here: the dialect is slow to import
            from sqlalchemy.dialects import postgresql

            insert = postgresql.insert(DeployLock)
        elif dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            insert = sqlite.insert(DeployLock)
        else:
            raise LedgerError(f"deploy locks are not implemented for {dialect}")
        table = DeployLock.__table__
        takeable = or_(table.c.expires_at <= at, table.c.flow_run_id == flow_run_id)
        statement = (
            insert.values(**values)
            .on_conflict_do_update(
                index_elements=[table.c.app, table.c.env],
                set_={k: insert.excluded[k] for k in values if k not in ("app", "env")},
                where=takeable,
            )
            .returning(table.c.holder)
        )
        won = session.execute(statement).first() is not None
        if not won:
            held = session.scalars(
                select(DeployLock).where(DeployLock.app == app, DeployLock.env == env)
            ).one()
            raise _held_error(held, app, env)
        lock = session.scalars(
            select(DeployLock)
            .where(DeployLock.app == app, DeployLock.env == env)
            .execution_options(populate_existing=True)
        ).one()
        audit.record(
            session,
            holder,
            "lock.acquired",
            "deploy_lock",
            f"{app}/{env}",
            {
                "flow_run_id": flow_run_id,
                "version": version,
                "expires_at": lock.expires_at.isoformat(),
            },
        )
        return lock


@retry_busy
def renew(
    db: Engine | Session,
    app: str,
    env: str,
    *,
    flow_run_id: str | None,
    lease_s: float = DEFAULT_LEASE_S,
    now: datetime | None = None,
) -> DeployLock:
    """Extend the lease held by ``flow_run_id`` to ``now + lease_s``.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        flow_run_id: the flow run that holds the lock.
        lease_s: new lease length from now, in seconds.
        now: the current time (default now, UTC).

    Returns:
        The renewed DeployLock.

    Raises:
        LockHeldError: another run holds the lock (ours expired and was taken over).
        LedgerError: nobody holds the lock (ours expired, or it was released).
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        lock = session.scalars(
            select(DeployLock).where(DeployLock.app == app, DeployLock.env == env).with_for_update()
        ).one_or_none()
        if lock is None:
            raise LedgerError(
                f"cannot renew the lock of {app}/{env}: nobody holds it",
                hint="acquire it again",
            )
        if lock.flow_run_id != flow_run_id:
            raise _held_error(lock, app, env)
        lock.expires_at = at + timedelta(seconds=lease_s)
        audit.record(
            session,
            lock.holder,
            "lock.renewed",
            "deploy_lock",
            f"{app}/{env}",
            {"flow_run_id": flow_run_id, "expires_at": lock.expires_at.isoformat()},
        )
        return lock


@retry_busy
def release(
    db: Engine | Session,
    app: str,
    env: str,
    *,
    flow_run_id: str | None,
    actor: str | None = None,
    force: bool = False,
) -> bool:
    """Give up the deploy lock of ``app``/``env``.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        flow_run_id: the flow run releasing its own lock.
        actor: who, for the audit log (default the holder).
        force: release whoever holds it (an operator clearing a stuck lock).

    Returns:
        True if a lock was released, False if there was none to release (no audit event then).

    Raises:
        LockHeldError: another run holds the lock and ``force`` is False.
        LedgerError: the database refused the change.
    """
    with unit_of_work(db) as session:
        lock = session.scalars(
            select(DeployLock).where(DeployLock.app == app, DeployLock.env == env).with_for_update()
        ).one_or_none()
        if lock is None:
            return False
        if not force and lock.flow_run_id != flow_run_id:
            raise _held_error(lock, app, env)
        details = {
            "holder": lock.holder,
            "flow_run_id": lock.flow_run_id,
            "version": lock.version,
            "forced": force,
        }
        session.execute(
            delete(DeployLock)
            .where(DeployLock.app == app, DeployLock.env == env)
            .execution_options(synchronize_session=False)
        )
        session.expunge(lock)
        audit.record(
            session,
            actor or lock.holder,
            "lock.released",
            "deploy_lock",
            f"{app}/{env}",
            details,
        )
        return True


@retry_busy
def take_over(
    db: Engine | Session,
    app: str,
    env: str,
    *,
    dead_flow_run_id: str,
    holder: str,
    flow_run_id: str | None,
    version: str | None = None,
    reason: str,
    lease_s: float = DEFAULT_LEASE_S,
    now: datetime | None = None,
) -> DeployLock | None:
    """Take over the lock of ``app``/``env`` from a holder whose run is known to be dead
    (its Prefect run ended, or no longer exists), before its lease expires.

    One guarded UPDATE: only a lock still held by ``dead_flow_run_id`` changes hands, so a
    lock the dead run no longer holds (released, expired and taken by someone else) is left
    alone. Audited as ``lock.taken_over`` naming the dead holder and why it is dead.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        dead_flow_run_id: the flow run that held the lock and is dead.
        holder: the new holder.
        flow_run_id: the new holder's flow run.
        version: what the new holder releases.
        reason: why the old holder is known to be dead (its run's state), for the audit log.
        lease_s: the new lease, in seconds.
        now: the current time (default now, UTC).

    Returns:
        The lock now held, or None if the dead run did not hold it any more.

    Raises:
        LedgerError: the database refused the change.
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        lock = session.scalars(
            select(DeployLock)
            .where(
                DeployLock.app == app,
                DeployLock.env == env,
                DeployLock.flow_run_id == dead_flow_run_id,
            )
            .with_for_update()
        ).one_or_none()
        if lock is None:
            return None
        dead = {
            "holder": lock.holder,
            "flow_run_id": lock.flow_run_id,
            "version": lock.version,
            "acquired_at": lock.acquired_at.isoformat(),
            "expires_at": lock.expires_at.isoformat(),
        }
        lock.holder = holder
        lock.flow_run_id = flow_run_id
        lock.version = version
        lock.acquired_at = at
        lock.expires_at = at + timedelta(seconds=lease_s)
        audit.record(
            session,
            holder,
            "lock.taken_over",
            "deploy_lock",
            f"{app}/{env}",
            {"dead_holder": dead, "reason": reason, "flow_run_id": flow_run_id},
        )
        return lock


@retry_busy
def release_dead(
    db: Engine | Session, app: str, env: str, *, dead_flow_run_id: str, actor: str, reason: str
) -> bool:
    """Free the lock of ``app``/``env`` if the dead run ``dead_flow_run_id`` still holds it
    (a reconcile after the run died), audited as ``lock.released`` with the reason.

    Returns:
        True if the dead run held it and it is now free.
    """
    with unit_of_work(db) as session:
        lock = session.scalars(
            select(DeployLock)
            .where(
                DeployLock.app == app,
                DeployLock.env == env,
                DeployLock.flow_run_id == dead_flow_run_id,
            )
            .with_for_update()
        ).one_or_none()
        if lock is None:
            return False
        details = {
            "holder": lock.holder,
            "flow_run_id": lock.flow_run_id,
            "version": lock.version,
            "forced": True,
            "reason": reason,
        }
        session.execute(
            delete(DeployLock)
            .where(DeployLock.app == app, DeployLock.env == env)
            .execution_options(synchronize_session=False)
        )
        session.expunge(lock)
        audit.record(session, actor, "lock.released", "deploy_lock", f"{app}/{env}", details)
        return True


def current_lock(
    db: Engine | Session, app: str, env: str, *, now: datetime | None = None
) -> DeployLock | None:
    """Who holds the deploy lock of ``app``/``env``.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        now: the current time (default now, UTC).

    Returns:
        The unexpired DeployLock, or None if the lock is free.
    """
    at = now or utcnow()
    with unit_of_work(db) as session:
        return session.scalars(
            select(DeployLock).where(
                DeployLock.app == app, DeployLock.env == env, DeployLock.expires_at > at
            )
        ).one_or_none()
