"""Errors of messages Quayside sends (notifications, chat replies)."""

from __future__ import annotations

from quayside.errors import QuaysideError


class SendError(QuaysideError):
    """A chat platform refused a message we sent (for example DingTalk's non-zero errcode)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
