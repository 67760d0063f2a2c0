"""Users, API tokens, spaces and role grants: the rows and their state changes.

Every state change writes one audit event in the same transaction. Stored tokens are ids
and salted hashes only (:mod:`quayside.auth.tokens`); no function here sees a plaintext.
Role names are plain strings here; :mod:`quayside.auth.roles` gives them an order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, Select, select, update
from sqlalchemy.orm import Session

from quayside.errors import InputError, LedgerError, NotFoundError
from quayside.ledger import audit
from quayside.ledger.busy import is_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import ApiToken, RoleGrant, Space, TokenPurpose, User, utcnow


def _user(session: Session, name: str) -> User:
    found = session.scalars(select(User).where(User.name == name)).one_or_none()
    if found is None:
        raise NotFoundError(
            f"no user '{name}' in the ledger", hint="add one with `quayside users add NAME`"
        )
    return found


def create_user(
    db: Engine | Session,
    name: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
    dingtalk_id: str | None = None,
    is_super: bool = False,
    actor: str = "system",
) -> User:
    """Add a user.

    Args:
        db: Engine (own transaction) or Session (caller's transaction).
        name: unique login name.
        display_name: human name.
        email: e-mail address.
        dingtalk_id: DingTalk senderStaffId (unique).
        is_super: platform administrator (SUPER everywhere).
        actor: who did it, for the audit log.

    Returns:
        The new User.

    Raises:
        InputError: the name is empty or longer than 200 characters, or the name or
            DingTalk id is taken.
        LedgerError: the database refused the change.
    """
    if not name or not name.strip() or len(name) > 200:
        raise InputError("a user name must be 1 to 200 characters")
    name = name.strip()
    with unit_of_work(db) as session:
        if session.scalars(select(User.id).where(User.name == name)).first() is not None:
            raise InputError(f"user '{name}' already exists")
        if dingtalk_id is not None:
            other = session.scalars(select(User.name).where(User.dingtalk_id == dingtalk_id))
            taken = other.first()
            if taken is not None:
                raise InputError(f"DingTalk id '{dingtalk_id}' already belongs to user '{taken}'")
        user = User(
            name=name,
            display_name=display_name,
            email=email,
            dingtalk_id=dingtalk_id,
            is_super=is_super,
            disabled=False,
            created_at=utcnow(),
        )
        session.add(user)
        session.flush()
        audit.record(
            session,
            actor,
            "user.created",
            "user",
            name,
            {"is_super": is_super, "dingtalk_id": dingtalk_id, "email": email},
        )
        return user


def get_user(db: Engine | Session, name: str) -> User:
    """One user by name.

    Raises:
        NotFoundError: no such user.
    """
    with unit_of_work(db, read_only=True) as session:
        return _user(session, name)


def find_user(db: Engine | Session, name: str) -> User | None:
    """One user by name, or None."""
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(select(User).where(User.name == name)).one_or_none()


def user_by_dingtalk_id(db: Engine | Session, dingtalk_id: str) -> User | None:
    """The user whose DingTalk senderStaffId is ``dingtalk_id``, or None."""
    with unit_of_work(db, read_only=True) as session:
        query = select(User).where(User.dingtalk_id == dingtalk_id)
        return session.scalars(query).one_or_none()


def list_users(db: Engine | Session) -> Sequence[User]:
    """All users, by name."""
    with unit_of_work(db, read_only=True) as session:
        return session.scalars(select(User).order_by(User.name)).all()


def set_disabled(db: Engine | Session, name: str, disabled: bool, *, actor: str = "system") -> User:
    """Disable (or enable again) a user: a disabled user has no role and no valid token.

    Raises:
        NotFoundError: no such user.
    """
    with unit_of_work(db) as session:
        user = _user(session, name)
        if user.disabled != disabled:
            user.disabled = disabled
            audit.record(
                session, actor, "user.disabled" if disabled else "user.enabled", "user", name
            )
        return user


def add_token(
    db: Engine | Session,
    user: str,
    *,
    token_id: str,
    secret_hash: str,
    description: str = "",
    purpose: TokenPurpose | str = TokenPurpose.api,
    expires_at: datetime | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> ApiToken:
    """Store a new token's id and hash for ``user``.

    Raises:
        NotFoundError: no such user.
        InputError: unknown purpose.
        LedgerError: the database refused the change (e.g. a duplicate token id).
    """
    try:
        purpose = TokenPurpose(purpose)
    except ValueError as e:
        raise InputError(f"token purpose must be api or approval-once, not {purpose!r}") from e
    with unit_of_work(db) as session:
        owner = _user(session, user)
        row = ApiToken(
            token_id=token_id,
            user=owner,
            secret_hash=secret_hash,
            description=description,
            purpose=purpose,
            created_at=now or utcnow(),
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor,
            "token.created",
            "api_token",
            token_id,
            {
                "user": user,
                "purpose": purpose.value,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        return row


def get_token(db: Engine | Session, token_id: str) -> ApiToken | None:
    """The stored token ``token_id`` (with its user), or None (a read-only transaction)."""
    with unit_of_work(db, read_only=True) as session:
        query = select(ApiToken).where(ApiToken.token_id == token_id)
        return session.scalars(query).one_or_none()


def list_tokens(db: Engine | Session, user: str | None = None) -> Sequence[ApiToken]:
    """Stored tokens (never secrets), newest first, optionally of one user."""
    with unit_of_work(db, read_only=True) as session:
        query = select(ApiToken).order_by(ApiToken.id.desc())
        if user is not None:
            query = query.where(ApiToken.user_id == _user(session, user).id)
        return session.scalars(query).all()


def revoke_token(
    db: Engine | Session, token_id: str, *, actor: str = "system", now: datetime | None = None
) -> ApiToken:
    """Revoke a token (idempotent: revoking twice keeps the first time).

    Raises:
        NotFoundError: no such token.
    """
    with unit_of_work(db) as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no token with id '{token_id}'")
        if row.revoked_at is None:
            row.revoked_at = now or utcnow()
            audit.record(
                session, actor, "token.revoked", "api_token", token_id, {"user": row.user.name}
            )
        return row


def touch_token(db: Engine | Session, token_id: str, at: datetime) -> bool:
    """Set ``last_used_at`` (bookkeeping, not audited: it changes on every request).

    Given an Engine, a ledger another writer holds past the busy timeout skips it: a token
    check must not fail on bookkeeping (the check itself only read), and the next check
    within a minute writes it.

    Returns:
        False if it was skipped because the ledger was busy.
    """
    try:
        with unit_of_work(db) as session:
            session.execute(
                update(ApiToken).where(ApiToken.token_id == token_id).values(last_used_at=at)
            )
    except LedgerError as e:
        if isinstance(db, Session) or not is_busy(e):
            raise
        return False
    return True


def consume_token(db: Engine | Session, token_id: str, at: datetime, *, actor: str) -> bool:
    """Mark a single-use token used, atomically (one UPDATE guarded on ``consumed_at``).

    Returns:
        True if this call consumed it; False if it had been consumed already.
    """
    with unit_of_work(db) as session:
        result = session.execute(
            update(ApiToken)
            .where(ApiToken.token_id == token_id, ApiToken.consumed_at.is_(None))
            .values(consumed_at=at, last_used_at=at)
        )
        consumed = bool(getattr(result, "rowcount", 0) == 1)
        if consumed:
            audit.record(session, actor, "token.consumed", "api_token", token_id)
        return consumed


def ensure_space(db: Engine | Session, name: str, *, actor: str = "system") -> Space:
    """The space called ``name``, created (and audited) if missing."""
    with unit_of_work(db) as session:
        found = session.scalars(select(Space).where(Space.name == name)).one_or_none()
        if found is not None:
            return found
        space = Space(name=name, created_at=utcnow())
        session.add(space)
        session.flush()
        audit.record(session, actor, "space.created", "space", name)
        return space


def _grant_query(user_id: int, space_id: int, project: str | None) -> Select[RoleGrant]:
    query = select(RoleGrant).where(RoleGrant.user_id == user_id, RoleGrant.space_id == space_id)
    if project is None:
        return query.where(RoleGrant.project.is_(None))
    return query.where(RoleGrant.project == project)


def grant_role(
    db: Engine | Session,
    user: str,
    space: str,
    role: str,
    *,
    project: str | None = None,
    actor: str = "system",
) -> RoleGrant:
    """Give ``user`` ``role`` in ``space`` (or in one project of it), replacing an earlier
    grant at the same place. The space is created if missing.

    Raises:
        NotFoundError: no such user.
    """
    with unit_of_work(db) as session:
        owner = _user(session, user)
        where = ensure_space(session, space, actor=actor)
        existing = session.scalars(_grant_query(owner.id, where.id, project)).one_or_none()
        previous = existing.role if existing is not None else None
        if existing is None:
            existing = RoleGrant(
                user=owner, space=where, project=project, role=role, created_at=utcnow()
            )
            session.add(existing)
        else:
            existing.role = role
        session.flush()
        if previous != role:
            audit.record(
                session,
                actor,
                "role.granted",
                "user",
                user,
                {"space": space, "project": project, "role": role, "previous": previous},
            )
        return existing


def revoke_role(
    db: Engine | Session,
    user: str,
    space: str,
    *,
    project: str | None = None,
    actor: str = "system",
) -> bool:
    """Remove ``user``'s grant in ``space`` (or in one project of it).

    Returns:
        True if a grant was removed, False if there was none.

    Raises:
        NotFoundError: no such user.
    """
    with unit_of_work(db) as session:
        owner = _user(session, user)
        where = session.scalars(select(Space).where(Space.name == space)).one_or_none()
        if where is None:
            return False
        existing = session.scalars(_grant_query(owner.id, where.id, project)).one_or_none()
        if existing is None:
            return False
        role = existing.role
        session.delete(existing)
        session.flush()
        audit.record(
            session,
            actor,
            "role.revoked",
            "user",
            user,
            {"space": space, "project": project, "role": role},
        )
        return True


def grants_for(
    db: Engine | Session, user: str, space: str, project: str | None
) -> tuple[str | None, str | None]:
    """The raw grants that decide ``user``'s role at a place.

    Returns:
        ``(space_role, project_role)``; each None when not granted (``project_role`` is None
        when ``project`` is None).
    """
    with unit_of_work(db, read_only=True) as session:
        query = (
            select(RoleGrant.project, RoleGrant.role)
            .join(User, RoleGrant.user_id == User.id)
            .join(Space, RoleGrant.space_id == Space.id)
            .where(User.name == user, Space.name == space)
        )
        space_role: str | None = None
        project_role: str | None = None
        for grant_project, role in session.execute(query):
            if grant_project is None:
                space_role = role
            elif project is not None and grant_project == project:
                project_role = role
        return space_role, project_role


def grants_by_place(db: Engine | Session, user: str) -> dict[tuple[str, str | None], str]:
    """Every grant of ``user`` in one read: ``(space, project or None) -> role``."""
    with unit_of_work(db, read_only=True) as session:
        query = (
            select(Space.name, RoleGrant.project, RoleGrant.role)
            .join(User, RoleGrant.user_id == User.id)
            .join(Space, RoleGrant.space_id == Space.id)
            .where(User.name == user)
        )
        return {(space, project): role for space, project, role in session.execute(query)}


def list_grants(db: Engine | Session, user: str | None = None) -> Sequence[RoleGrant]:
    """Role grants, optionally of one user."""
    with unit_of_work(db, read_only=True) as session:
        query = select(RoleGrant).order_by(RoleGrant.id)
        if user is not None:
            query = query.where(RoleGrant.user_id == _user(session, user).id)
        return session.scalars(query).all()
