"""Server-side sessions of the config pages, on a fake clock: a new random id per login, kept
hashed; ended after the idle time, after the lifetime, at the login token's expiry, at logout
and when its token is revoked; bounded in number (oldest first)."""

from __future__ import annotations

from quayside.gateway.web_sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(clock: Clock, **kwargs: float) -> SessionStore:
    return SessionStore(idle_s=60, lifetime_s=600, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_each_login_gets_a_new_random_id_and_its_own_csrf_token() -> None:
    sessions = store(Clock())
    first_id, first = sessions.create("ann", is_super=False, token_id="a" * 12)
    second_id, second = sessions.create("ann", is_super=False, token_id="a" * 12)
    assert first_id != second_id and first.csrf != second.csrf
    assert len(first_id) >= 43 and len(first.csrf) >= 43  # 32 random bytes each
    assert sessions.get(first_id) is not None and sessions.get(second_id) is not None
    assert first_id not in repr(sessions._sessions)  # stored by hash only
    assert "csrf" not in repr(first) and first.csrf not in repr(first)


def test_unknown_or_empty_ids_have_no_session() -> None:
    sessions = store(Clock())
    sessions.create("ann", is_super=False, token_id="a" * 12)
    assert sessions.get(None) is None
    assert sessions.get("") is None
    assert sessions.get("made-up") is None


def test_a_session_ends_after_the_idle_time_and_requests_keep_it_alive() -> None:
    clock = Clock()
    sessions = store(clock)
    sid, _ = sessions.create("ann", is_super=False, token_id="a" * 12)
    for _ in range(5):
        clock.now += 50
        assert sessions.get(sid) is not None
    clock.now += 60
    assert sessions.get(sid) is None
    clock.now -= 60  # an ended session is forgotten: it does not come back
    assert sessions.get(sid) is None


def test_a_session_ends_after_its_lifetime_however_busy() -> None:
    clock = Clock()
    sessions = store(clock)
    sid, _ = sessions.create("ann", is_super=False, token_id="a" * 12)
    for _ in range(19):  # a request every 30 s, up to 570 s after the login
        clock.now += 30
        assert sessions.get(sid) is not None
    clock.now += 30  # 600 s: the lifetime
    assert sessions.get(sid) is None


def test_a_session_ends_when_its_login_token_expires() -> None:
    clock = Clock()
    sessions = store(clock)
    sid, _ = sessions.create("ann", is_super=False, token_id="a" * 12, token_left_s=45)
    clock.now += 44
    assert sessions.get(sid) is not None
    clock.now += 1
    assert sessions.get(sid) is None


def test_logout_and_revocation_end_sessions() -> None:
    sessions = store(Clock())
    sid, _ = sessions.create("ann", is_super=False, token_id="a" * 12)
    sessions.end(sid)
    assert sessions.get(sid) is None
    sessions.end(None)  # nothing to end: no error
    one, _ = sessions.create("ann", is_super=False, token_id="b" * 12)
    two, _ = sessions.create("ann", is_super=False, token_id="b" * 12)
    other, _ = sessions.create("bob", is_super=False, token_id="c" * 12)
    assert sessions.end_token("b" * 12) == 2
    assert sessions.get(one) is None and sessions.get(two) is None
    assert sessions.get(other) is not None


def test_the_store_is_bounded_and_forgets_the_oldest_first() -> None:
    clock = Clock()
    sessions = SessionStore(idle_s=60, lifetime_s=600, max_sessions=3, clock=clock)
    ids = [sessions.create(f"u{i}", is_super=False, token_id=f"{i:012x}")[0] for i in range(3)]
    sessions.get(ids[0])  # recently used: kept
    newest, _ = sessions.create("u3", is_super=False, token_id="3" * 12)
    assert len(sessions) == 3
    assert sessions.get(ids[1]) is None
    assert sessions.get(ids[0]) is not None and sessions.get(newest) is not None


def test_ended_sessions_are_swept() -> None:
    clock = Clock()
    sessions = store(clock)
    for i in range(4):
        sessions.create(f"u{i}", is_super=False, token_id=f"{i:012x}")
    clock.now += 61
    assert len(sessions) == 0
