"""Exchanging a Quayside API token for a config-page session, and checking on every request
that the token behind a session is still good.

The token is checked by :func:`quayside.auth.service.authenticate` (the same check as a bearer
token; single-use approval tokens are refused); the session keeps the token's id only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from quayside.gateway.errors import Unauthorized
from quayside.gateway.web_sessions import SessionStore, WebSession
from quayside.ledger.models import utcnow


class LoginNeeded(Unauthorized):
    """No live session: the browser must log in (again)."""

    hint = "log in with your Quayside API token"


@dataclass(frozen=True)
class LoggedIn:
    """A new session: its id (for the cookie only) and what it holds."""

    session_id: str
    session: WebSession

    def __repr__(self) -> str:
        return f"LoggedIn(session={self.session!r})"


def log_in(engine: Engine, sessions: SessionStore, token_text: str) -> LoggedIn:
    """Open a session for the owner of ``token_text`` (blocking: the ledger is read).

    Raises:
        Unauthorized: the token is malformed, unknown, revoked, expired, an approval token,
            or its user is disabled (the message names at most the token's id).
    """
    from quayside.auth import service
    from quayside.ledger.users import get_token

    if not token_text.strip():
        raise Unauthorized("paste your API token to log in", hint=LoginNeeded.hint)
    try:
        user = service.authenticate(engine, token_text)
    except service.AuthFailed as e:
        raise Unauthorized(f"token not accepted: {e.message}", hint=e.hint) from None
    stored = get_token(engine, user.token_id)
    left = None
    if stored is not None and stored.expires_at is not None:
        left = (stored.expires_at - utcnow()).total_seconds()
    session_id, session = sessions.create(
        user.name, is_super=user.is_super, token_id=user.token_id, token_left_s=left
    )
    return LoggedIn(session_id, session)


def token_still_good(engine: Engine, token_id: str) -> bool:
    """Whether the token ``token_id`` is neither revoked nor expired and its user is enabled
    (blocking: the ledger is read)."""
    from quayside.ledger.users import get_token

    stored = get_token(engine, token_id)
    if stored is None or stored.revoked_at is not None or stored.user.disabled:
        return False
    return stored.expires_at is None or utcnow() < stored.expires_at
