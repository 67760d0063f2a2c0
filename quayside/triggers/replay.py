"""Refusing replayed DingTalk callbacks across every gateway process (security review, item 6).

DingTalk's ``sign`` covers only the ``timestamp`` (:mod:`quayside.triggers.dingtalk`), not the
body: whoever captures one callback can send its headers with another body (another sender,
another command) for an hour. So each ``(timestamp, sign)`` pair is accepted once, and so is
each ``msgId`` (a resent body under a new signature), and the record lives in the ledger
(:mod:`quayside.ledger.replays`), not in one process's memory: a second gateway, a replica or
a restarted one refuses what any of them accepted.

A pair is remembered until its timestamp can no longer pass :func:`verify_signature`'s window,
plus :data:`CLOCK_SKEW_S` for gateways whose clocks differ; a ``msgId`` for the same time from
when it was first seen.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from quayside.ledger.replays import Nonce, claim_once
from quayside.triggers.dingtalk import WINDOW_S
from quayside.triggers.errors import ReplayError

CLOCK_SKEW_S = 300
"""How much longer than the window a pair is kept (other gateways' clocks may be behind)."""
SIGN_KIND = "dingtalk.sign"
MESSAGE_KIND = "dingtalk.msg_id"
REPLAY_HINT = (
    "DingTalk signs every new message afresh: send the chat command again; if you did not "
    "resend anything, someone may be replaying captured callbacks"
)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class ReplayGuard:
    """Accepts each signed DingTalk callback once, for every gateway sharing the ledger.

    Thread-safe and stateless apart from the ledger: two instances on the same ledger (two
    gateway processes) behave as one.
    """

    def __init__(
        self,
        engine: Callable[[], Engine],
        *,
        window_s: int = WINDOW_S,
        clock_skew_s: int = CLOCK_SKEW_S,
    ) -> None:
        """Create a guard.

        Args:
            engine: gives the ledger engine (called on each check, so it may be created lazily).
            window_s: the signature window :func:`verify_signature` accepts.
            clock_skew_s: extra time a pair is kept past its window.
        """
        self._engine = engine
        self.keep_ms = (window_s + clock_skew_s) * 1000

    def check(self, timestamp: str, sign: str, msg_id: str | None, now_ms: int) -> None:
        """Accept a verified callback once: its ``(timestamp, sign)`` pair and its ``msgId``.

        Call it after :func:`~quayside.triggers.dingtalk.verify_signature` succeeded, so that
        only genuinely signed requests are recorded.

        Args:
            timestamp: the verified ``timestamp`` header (ms since the epoch).
            sign: the verified ``sign`` header.
            msg_id: the body's ``msgId``, if it has one.
            now_ms: the current time in ms.

        Raises:
            ReplayError: the pair or the ``msgId`` was accepted before (by any gateway).
            LedgerError: the ledger cannot be reached (the gateway answers 503; nothing runs).
        """
        timestamp = timestamp.strip()
        pair = Nonce(
            SIGN_KIND,
            f"{timestamp}\n{sign.strip()}",
            _at(max(int(timestamp), now_ms) + self.keep_ms),
        )
        nonces = [pair]
        if msg_id:
            nonces.append(Nonce(MESSAGE_KIND, msg_id, _at(now_ms + self.keep_ms)))
        seen = claim_once(self._engine(), nonces, now=_at(now_ms))
        if seen is None:
            return
        if seen.kind == SIGN_KIND:
            raise ReplayError(
                f"this signed DingTalk request (timestamp {timestamp}) was already received; "
                "a signature is accepted once",
                hint=REPLAY_HINT,
            )
        raise ReplayError(
            f"DingTalk message {seen.value[:64]!r} was already received; a message is carried out "
            "once",
            hint=REPLAY_HINT,
        )
