"""Server-side sessions of the config pages: a browser logs in once with a Quayside API token
and then carries only a random session id in a cookie.

The token itself is never kept (not in the cookie, not in the page, not here): a session holds
the user's name and the token's *id*, so every request can check that the token behind it is
still good (not revoked or expired, its user not disabled) and a revoked token ends its
sessions at once. Sessions live in the gateway process's memory: a restart logs everyone out,
which is the safe failure. Ids are stored hashed, so the table alone cannot be replayed.

A session ends after :data:`IDLE_S` without a request, after :data:`LIFETIME_S` in any case,
and when its token expires; the store holds at most :data:`MAX_SESSIONS` (the oldest go first).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

IDLE_S = 30 * 60.0
LIFETIME_S = 8 * 3600.0
MAX_SESSIONS = 10_000
SESSION_ID_BYTES = 32
CSRF_BYTES = 32


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class WebSession:
    """One logged-in browser.

    Attributes:
        user: the ledger user the token belonged to.
        is_super: whether that user is SUPER (at login).
        token_id: the id part of the token used to log in (never its secret).
        csrf: the per-session CSRF token every form carries.
        created: monotonic time of the login.
        last_seen: monotonic time of the last request.
        ends_at: monotonic time after which the session is over whatever happens (the lifetime
            or the token's expiry, whichever is first).
    """

    user: str
    is_super: bool
    token_id: str
    csrf: str
    created: float
    last_seen: float
    ends_at: float

    def __repr__(self) -> str:
        return f"WebSession(user={self.user!r}, token_id={self.token_id!r})"


class SessionStore:
    """Sessions by (hashed) id; thread-safe."""

    def __init__(
        self,
        *,
        idle_s: float = IDLE_S,
        lifetime_s: float = LIFETIME_S,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()

    def create(
        self, user: str, *, is_super: bool, token_id: str, token_left_s: float | None = None
    ) -> tuple[str, WebSession]:
        """Open a session for ``user`` (always a new id: a login never reuses one).

        Args:
            token_left_s: seconds until the login token expires (None: it does not).

        Returns:
            ``(session_id, session)``: the id goes in the cookie, and only there.
        """
        now = self.clock()
        lifetime = self.lifetime_s if token_left_s is None else min(self.lifetime_s, token_left_s)
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = WebSession(
            user=user,
            is_super=is_super,
            token_id=token_id,
            csrf=secrets.token_urlsafe(CSRF_BYTES),
            created=now,
            last_seen=now,
            ends_at=now + lifetime,
        )
        with self._lock:
            self._sweep(now)
            while len(self._sessions) >= self.max_sessions:
                self._sessions.popitem(last=False)
            self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session ``session_id`` names (its idle clock restarted), or None when
        there is none or it is over (an ended session is forgotten)."""
        if not session_id:
            return None
        now = self.clock()
        key = _key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self._over(session, now):
                del self._sessions[key]
                return None
            session = replace(session, last_seen=now)
            self._sessions[key] = session
            self._sessions.move_to_end(key)
            return session

    def end(self, session_id: str | None) -> None:
        """Forget the session (logout); nothing happens for an unknown id."""
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def end_token(self, token_id: str) -> int:
        """End every session opened with the token ``token_id``; how many there were."""
        with self._lock:
            keys = [k for k, s in self._sessions.items() if s.token_id == token_id]
            for key in keys:
                del self._sessions[key]
            return len(keys)

    def __len__(self) -> int:
        with self._lock:
            self._sweep(self.clock())
            return len(self._sessions)

    def _over(self, session: WebSession, now: float) -> bool:
        return now >= session.ends_at or now - session.last_seen >= self.idle_s

    def _sweep(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._over(s, now)]:
            del self._sessions[key]
