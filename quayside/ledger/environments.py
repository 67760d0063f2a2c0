"""Apps and environments in the ledger, and pausing their automatic triggers."""

from __future__ import annotations

import shlex

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from quayside.errors import NotFoundError
from quayside.ledger import audit
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import App, Environment, utcnow


def find_environment(session: Session, app: str, env: str) -> Environment | None:
    """The environment ``env`` of ``app``, or None.

    Args:
        session: an open session.
        app: app name.
        env: environment name.

    Returns:
        The Environment or None.
    """
    query = (
        select(Environment).join(Environment.app).where(App.name == app, Environment.name == env)
    )
    return session.scalars(query).one_or_none()


def get_environment(session: Session, app: str, env: str) -> Environment:
    """The environment ``env`` of ``app``.

    Args:
        session: an open session.
        app: app name.
        env: environment name.

    Returns:
        The Environment.

    Raises:
        NotFoundError: no such app or environment in the ledger.
    """
    found = find_environment(session, app, env)
    if found is None:
        raise NotFoundError(
            f"environment {app}/{env} is not in the ledger",
            hint="check the app and environment names in quayside.yaml",
        )
    return found


def _ensure(session: Session, app: str, env: str) -> tuple[Environment, bool]:
    """The environment, created (with its app) if missing; True if anything was created."""
    found = find_environment(session, app, env)
    if found is not None:
        return found, False
    app_row = session.scalars(select(App).where(App.name == app)).one_or_none()
    if app_row is None:
        app_row = App(name=app, created_at=utcnow())
        session.add(app_row)
    environment = Environment(app=app_row, name=env, auto_triggers_paused=False)
    session.add(environment)
    session.flush()
    return environment, True


def ensure_app_env(
    db: Engine | Session, app: str, env: str, *, actor: str = "system"
) -> Environment:
    """Make sure ``app`` and its environment ``env`` exist in the ledger.

    Writes one audit event (``environment.created``) when it creates anything, none otherwise.

    Args:
        db: Engine (own transaction) or Session (caller's transaction).
        app: app name.
        env: environment name.
        actor: who asked, for the audit log.

    Returns:
        The Environment.

    Raises:
        LedgerError: the database refused the change (e.g. a concurrent creation).
    """
    with unit_of_work(db) as session:
        environment, created = _ensure(session, app, env)
        if created:
            audit.record(
                session,
                actor,
                "environment.created",
                "environment",
                f"{app}/{env}",
                {"app": app, "env": env},
            )
        return environment


def pause_auto_triggers(
    db: Engine | Session, app: str, env: str, *, actor: str, reason: str
) -> Environment:
    """Stop automatic triggers (git hooks, schedules, chat) from starting releases of
    ``app`` in ``env``; manual releases still run.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        actor: who paused, recorded as ``paused_by`` and in the audit log.
        reason: why, shown to whoever is refused.

    Returns:
        The updated Environment.

    Raises:
        NotFoundError: no such environment in the ledger.
        LedgerError: the database refused the change.
    """
    with unit_of_work(db) as session:
        environment = get_environment(session, app, env)
        environment.auto_triggers_paused = True
        environment.paused_reason = reason
        environment.paused_by = actor
        environment.paused_at = utcnow()
        audit.record(
            session,
            actor,
            "environment.auto_triggers_paused",
            "environment",
            f"{app}/{env}",
            {"reason": reason},
        )
        return environment


def resume_command(app: str, env: str) -> str:
    """The command that resumes ``app``/``env``'s automatic triggers, for every message that
    says they are paused (a rollback's log and notification, a refused hook or chat deploy)."""
    return shlex.join(["quayside", "triggers", "resume", app, env])


def resume_auto_triggers(db: Engine | Session, app: str, env: str, *, actor: str) -> Environment:
    """Let automatic triggers start releases of ``app`` in ``env`` again.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.
        actor: who resumed, for the audit log.

    Returns:
        The updated Environment.

    Raises:
        NotFoundError: no such environment in the ledger.
        LedgerError: the database refused the change.
    """
    with unit_of_work(db) as session:
        environment = get_environment(session, app, env)
        previous = {
            "reason": environment.paused_reason,
            "paused_by": environment.paused_by,
            "was_paused": environment.auto_triggers_paused,
        }
        environment.auto_triggers_paused = False
        environment.paused_reason = None
        environment.paused_by = None
        environment.paused_at = None
        audit.record(
            session,
            actor,
            "environment.auto_triggers_resumed",
            "environment",
            f"{app}/{env}",
            previous,
        )
        return environment


def auto_triggers_paused(db: Engine | Session, app: str, env: str) -> str | None:
    """Whether automatic triggers are paused for ``app`` in ``env``.

    Args:
        db: Engine or Session.
        app: app name.
        env: environment name.

    Returns:
        None if not paused (or the environment is not in the ledger yet), else a message naming
        who paused, when and why.
    """
    with unit_of_work(db) as session:
        environment = find_environment(session, app, env)
        if environment is None or not environment.auto_triggers_paused:
            return None
        when = environment.paused_at.isoformat() if environment.paused_at else "unknown time"
        return (
            f"automatic triggers for {app}/{env} were paused by {environment.paused_by} "
            f"at {when}: {environment.paused_reason} - resume with `{resume_command(app, env)}`"
        )
