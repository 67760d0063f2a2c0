"""DingTalk replay protection lives in the ledger (security review, issue 13 item 6): a signed
callback's (timestamp, sign) pair and its msgId are accepted once by every gateway sharing the
ledger, a restarted one included, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from quayside.ledger.db import make_engine
from quayside.ledger.models import SeenRequest
from quayside.notify.dingtalk_signing import compute_signature
from quayside.triggers.dingtalk import verify_signature
from quayside.triggers.errors import ReplayError
from quayside.triggers.replay import ReplayGuard

SECRET = "test-app-secret-not-real"
NOW = 1_577_262_237_757


def signed(timestamp: int) -> tuple[str, str]:
    return str(timestamp), compute_signature(str(timestamp), SECRET)


@pytest.fixture
def two_gateways(ledger_url: str) -> Iterator[tuple[ReplayGuard, ReplayGuard]]:
    """Two guards with their own engines on one ledger: two gateway processes."""
    engines = [make_engine(ledger_url), make_engine(ledger_url)]
    try:
        yield ReplayGuard(lambda: engines[0]), ReplayGuard(lambda: engines[1])
    finally:
        for engine in engines:
            engine.dispose()


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SeenRequest)).scalar_one())


def test_a_replayed_pair_with_another_sender_is_refused_by_another_gateway(
    two_gateways: tuple[ReplayGuard, ReplayGuard],
) -> None:
    """The review's attack: the pair a DEVELOPER's message was signed with, replayed to a
    second gateway with a MASTER's message (another msgId)."""
    first, second = two_gateways
    timestamp, sign = signed(NOW - 1000)
    verify_signature(SECRET, timestamp, sign, NOW)
    first.check(timestamp, sign, "msg-from-developer", NOW)
    verify_signature(SECRET, timestamp, sign, NOW + 5000)  # still a valid signature ...
    with pytest.raises(ReplayError) as raised:  # ... but used
        second.check(timestamp, sign, "msg-from-master", NOW + 5000)
    assert str(raised.value) == (
        f"this signed DingTalk request (timestamp {timestamp}) was already received; "
        "a signature is accepted once"
    )
    assert "send the chat command again" in (raised.value.hint or "")
    with pytest.raises(ReplayError, match="already received"):  # and by the first one too
        first.check(timestamp, sign, "msg-from-master-2", NOW + 6000)


def test_a_restarted_gateway_refuses_a_replay(ledger_url: str) -> None:
    timestamp, sign = signed(NOW)
    before = make_engine(ledger_url)
    try:
        ReplayGuard(lambda: before).check(timestamp, sign, "m1", NOW)
    finally:
        before.dispose()
    after = make_engine(ledger_url)  # a new process: nothing in memory
    try:
        with pytest.raises(ReplayError, match="already received"):
            ReplayGuard(lambda: after).check(timestamp, sign, "m1", NOW + 1000)
    finally:
        after.dispose()


def test_a_replayed_msg_id_is_refused(two_gateways: tuple[ReplayGuard, ReplayGuard]) -> None:
    """A message body resent under another (genuine, unused) signature."""
    first, second = two_gateways
    first.check(*signed(NOW), "msg0xxxxx", NOW)
    with pytest.raises(ReplayError) as raised:
        second.check(*signed(NOW + 2000), "msg0xxxxx", NOW + 2000)
    assert str(raised.value) == (
        "DingTalk message 'msg0xxxxx' was already received; a message is carried out once"
    )
    # the signature that came with the refused request is burned as well
    with pytest.raises(ReplayError, match="signed DingTalk request"):
        first.check(*signed(NOW + 2000), "another-msg", NOW + 3000)


def test_new_callbacks_are_accepted(two_gateways: tuple[ReplayGuard, ReplayGuard]) -> None:
    first, second = two_gateways
    for n in range(5):
        (first if n % 2 else second).check(*signed(NOW + n), f"m{n}", NOW + n)
    first.check(*signed(NOW + 10), None, NOW + 10)  # a callback without msgId


def test_pairs_are_forgotten_after_their_window(ledger_engine: Engine) -> None:
    guard = ReplayGuard(lambda: ledger_engine, window_s=60, clock_skew_s=30)
    guard.check(*signed(NOW), "m1", NOW)
    assert _rows(ledger_engine) == 2
    with pytest.raises(ReplayError):
        guard.check(*signed(NOW), "m2", NOW + 89_000)  # inside window + skew
    later = NOW + 91_000
    guard.check(*signed(later), "m3", later)  # prunes the expired rows
    assert _rows(ledger_engine) == 3  # m2's new msgId row, m3's pair and msgId


def test_concurrent_gateways_accept_a_pair_once(ledger_url: str) -> None:
    timestamp, sign = signed(NOW)
    accepted: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def gateway(n: int) -> None:
        engine = make_engine(ledger_url)
        try:
            start.wait()
            ReplayGuard(lambda: engine).check(timestamp, sign, f"m{n}", NOW)
            accepted.append(n)
        except ReplayError:
            refused.append(n)
        except BaseException as e:
            errors.append(e)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=gateway, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert (len(accepted), len(refused)) == (1, 5)
