"""The auth service: users, API tokens, roles, and turning a presented token into a user.

Used by the CLI (operator commands on the platform host), the gateway (bearer tokens, chat
users) and the approval gate. No Prefect import; every function takes the ledger Engine or
Session first. Plaintext tokens exist only in the return value of :func:`create_token` /
:func:`issue_approval_token` and in what a caller presents; the ledger keeps ids and hashes,
and no message here contains a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.auth import tokens
from quayside.auth.roles import (
    PermissionDenied,
    Role,
    check_approver,
    effective_role,
    require_role,
)
from quayside.errors import InputError, QuaysideError
from quayside.ledger import users
from quayside.ledger.models import RoleGrant, TokenPurpose, User, utcnow
from quayside.ledger.users import create_user

__all__ = [
    "AuthFailed",
    "AuthUser",
    "PermissionDenied",
    "Role",
    "authenticate",
    "check_approver",
    "create_token",
    "create_user",
    "effective_role",
    "grant_role",
    "issue_approval_token",
    "list_users",
    "require_role",
    "revoke_role",
    "revoke_token",
    "user_by_chat_id",
]

CHAT_PROVIDERS = ("dingtalk",)
LAST_USED_PRECISION = timedelta(minutes=1)
"""``last_used_at`` is written when it is older than this: most token checks only read."""


class AuthFailed(QuaysideError):
    """A presented token is not accepted. The message says why; it never contains the secret."""

    hint = "create a token with `quayside tokens create USER` on the platform host"


@dataclass(frozen=True)
class AuthUser:
    """Who a token belongs to."""

    name: str
    is_super: bool
    token_id: str
    purpose: str


def list_users(db: Engine | Session) -> Sequence[User]:
    """All users, by name."""
    return users.list_users(db)


def create_token(
    db: Engine | Session,
    user: str,
    *,
    description: str = "",
    expires_in: timedelta | None = None,
    purpose: TokenPurpose | str = TokenPurpose.api,
    actor: str = "system",
    now: datetime | None = None,
) -> str:
    """Create a token for ``user``; only its id and a salted hash are stored.

    Args:
        db: ledger Engine or Session.
        user: the owner.
        description: what it is for (shown in lists).
        expires_in: lifetime; None = until revoked.
        purpose: ``api`` or ``approval-once``.
        actor: who did it, for the audit log.
        now: creation time (default now).

    Returns:
        The plaintext ``qs_<id>_<secret>``: show it once, it cannot be recovered.

    Raises:
        NotFoundError: no such user.
        InputError: a non-positive lifetime, or a disabled user.
    """
    if expires_in is not None and expires_in <= timedelta(0):
        raise InputError("a token's lifetime must be positive")
    owner = users.get_user(db, user)
    if owner.disabled:
        raise InputError(f"user '{user}' is disabled; enable them before creating tokens")
    created = now or utcnow()
    token_id, plaintext = tokens.new_token()
    _, secret = tokens.parse_token(plaintext)
    users.add_token(
        db,
        user,
        token_id=token_id,
        secret_hash=tokens.hash_secret(secret),
        description=description,
        purpose=purpose,
        expires_at=created + expires_in if expires_in is not None else None,
        actor=actor,
        now=created,
    )
    return plaintext


def issue_approval_token(
    db: Engine | Session, user: str, ttl_s: float = 300, *, actor: str = "system"
) -> str:
    """A single-use token that answers one approval on ``user``'s behalf (the gateway uses it
    for chat users: it resumes the paused run with it, and the gate consumes it).

    Args:
        db: ledger Engine or Session.
        user: the approver.
        ttl_s: lifetime in seconds.
        actor: who issued it, for the audit log.

    Returns:
        The plaintext token (purpose ``approval-once``).
    """
    return create_token(
        db,
        user,
        description="single-use approval token",
        expires_in=timedelta(seconds=ttl_s),
        purpose=TokenPurpose.approval_once,
        actor=actor,
    )


def revoke_token(db: Engine | Session, token_id: str, *, actor: str = "system") -> None:
    """Revoke a token by id (the ``qs_<id>_`` part; the full token is accepted too).

    Raises:
        NotFoundError: no such token.
    """
    token_id = token_id.strip()
    if token_id.startswith(f"{tokens.PREFIX}_"):
        token_id = token_id.split("_")[1]
    users.revoke_token(db, token_id, actor=actor)


def authenticate(
    db: Engine | Session,
    token_text: str,
    *,
    now: datetime | None = None,
    allow_approval_once: bool = False,
) -> AuthUser:
    """Who presents this token? Keeps its ``last_used_at`` to within a minute.

    The check itself is a read-only transaction (no write lock on SQLite); a write follows
    only to consume a single-use token (one guarded UPDATE, so it counts once however many
    requests race) or when ``last_used_at`` is older than :data:`LAST_USED_PRECISION`.

    Args:
        db: ledger Engine or Session.
        token_text: the token as presented (no ``Bearer``).
        now: the time to judge expiry by (default now).
        allow_approval_once: accept single-use approval tokens (and consume them); only the
            approval paths pass True. Otherwise such a token is refused.

    Returns:
        The AuthUser.

    Raises:
        AuthFailed: malformed, unknown, revoked, expired, already used or wrong-purpose token,
            or a disabled user; each with its own message naming at most the token id.
    """
    at = now or utcnow()
    try:
        token_id, secret = tokens.parse_token(token_text)
    except InputError:
        raise AuthFailed("malformed token: expected qs_<12 hex>_<64 hex>") from None
    shown = tokens.display(token_id)
    stored = users.get_token(db, token_id)
    if stored is None or not tokens.verify(secret, stored.secret_hash):
        raise AuthFailed(f"unknown token {shown}")
    if stored.revoked_at is not None:
        raise AuthFailed(f"token {shown} was revoked")
    if stored.expires_at is not None and at >= stored.expires_at:
        raise AuthFailed(f"token {shown} expired at {stored.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    if stored.user.disabled:
        raise AuthFailed(f"user '{stored.user.name}' is disabled", hint="ask a SUPER to enable")
    if stored.purpose is TokenPurpose.approval_once:
        if not allow_approval_once:
            raise AuthFailed(f"token {shown} is a single-use approval token, not an API token")
        if stored.consumed_at is not None or not users.consume_token(
            db, token_id, at, actor=stored.user.name
        ):
            raise AuthFailed(f"single-use token {shown} was already used")
    elif stored.last_used_at is None or at - stored.last_used_at >= LAST_USED_PRECISION:
        users.touch_token(db, token_id, at)
    return AuthUser(
        name=stored.user.name,
        is_super=stored.user.is_super,
        token_id=token_id,
        purpose=stored.purpose.value,
    )


def grant_role(
    db: Engine | Session,
    user: str,
    role: Role | str,
    *,
    space: str,
    project: str | None = None,
    actor: str = "system",
) -> RoleGrant:
    """Give ``user`` ``role`` in ``space`` or in ``project`` (an app) of it.

    Raises:
        InputError: unknown role, or SUPER (that is a user flag: ``users add --super``).
        NotFoundError: no such user.
    """
    parsed = Role.parse(role)
    if parsed is Role.SUPER:
        raise InputError("SUPER is not granted per space; create the user with --super")
    return users.grant_role(db, user, space, parsed.name, project=project, actor=actor)


def revoke_role(
    db: Engine | Session,
    user: str,
    *,
    space: str,
    project: str | None = None,
    actor: str = "system",
) -> bool:
    """Remove ``user``'s grant in ``space`` (or ``project`` of it).

    Returns:
        True if a grant was removed.
    """
    return users.revoke_role(db, user, space, project=project, actor=actor)


def user_by_chat_id(
    db: Engine | Session, provider: str = "dingtalk", chat_user_id: str = ""
) -> str | None:
    """The Quayside user behind a chat identity (DingTalk: the senderStaffId).

    Returns:
        The user name, or None if unknown or disabled.

    Raises:
        InputError: unknown provider.
    """
    if provider not in CHAT_PROVIDERS:
        raise InputError(f"unknown chat provider '{provider}' (known: {', '.join(CHAT_PROVIDERS)})")
    if not chat_user_id:
        return None
    found = users.user_by_dingtalk_id(db, chat_user_id)
    if found is None or found.disabled:
        return None
    return found.name
