"""DingTalk robots: verifying outgoing-robot callbacks and building replies to them.

Callback (钉钉 "接收消息的消息协议", https://open.dingtalk.com/document/isvapp/receive-message):
DingTalk POSTs JSON to our URL with headers ``timestamp`` (ms) and ``sign`` =
``base64(HmacSHA256(key=appSecret, msg=timestamp + "\\n" + appSecret))``; a request whose
timestamp differs from ours by more than one hour, or whose sign differs, is not from DingTalk.
The signature covers only the timestamp, not the body, so a captured request could be replayed
inside that hour with any body: :class:`quayside.triggers.replay.ReplayGuard` accepts each
``(timestamp, sign)`` pair and each ``msgId`` once, across every gateway sharing the ledger.

The HMAC itself (:func:`quayside.notify.dingtalk_signing.compute_signature`) is shared with the
outbound robot messages; this inbound side imports it from there, never the other way round.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from quayside.errors import InputError
from quayside.notify.dingtalk_signing import compute_signature
from quayside.triggers.errors import SignatureError, StaleTimestampError
from quayside.user_names import RULE, is_name

WINDOW_S = 3600
"""DingTalk's validity window for a signed timestamp: one hour."""
SESSION_WEBHOOK_HOSTS = ("oapi.dingtalk.com", "api.dingtalk.com")
"""Hosts a callback's ``sessionWebhook`` may point at (we POST replies there)."""
MAX_REPLY_CHARS = 5000
"""Replies longer than this are truncated (our limit, to keep chat messages readable)."""


def verify_signature(
    app_secret: str,
    timestamp_header: str | None,
    sign_header: str | None,
    now_ms: int,
    window_s: int = WINDOW_S,
) -> None:
    """Check an outgoing-robot callback's ``timestamp`` and ``sign`` headers.

    Args:
        app_secret: the robot application's appSecret.
        timestamp_header: the ``timestamp`` header (ms since the epoch).
        sign_header: the ``sign`` header (Base64).
        now_ms: our current time in ms since the epoch.
        window_s: the accepted difference between the two clocks, default one hour.

    Raises:
        SignatureError: a header is missing or malformed, no secret is configured, or the
            signature does not match.
        StaleTimestampError: the timestamp is more than ``window_s`` away from ``now_ms``.
    """
    if not app_secret:
        raise SignatureError("no DingTalk appSecret is configured for this robot")
    if not timestamp_header or not sign_header:
        raise SignatureError("missing timestamp or sign header")
    timestamp = timestamp_header.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 16:
        raise SignatureError("timestamp header is not a number of milliseconds")
    if len(sign_header) > 128:
        raise SignatureError("sign header is too long")
    if abs(now_ms - int(timestamp)) > window_s * 1000:
        raise StaleTimestampError(
            f"timestamp is {abs(now_ms - int(timestamp)) // 1000} s away from now "
            f"(allowed: {window_s} s)"
        )
    expected = compute_signature(timestamp, app_secret)
    if not hmac.compare_digest(expected.encode("ascii"), sign_header.strip().encode("utf-8")):
        raise SignatureError("sign header does not match")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class TextContent(_Model):
    """``text`` of a callback: ``{"content": "..."}``."""

    content: str = Field(default="", max_length=20_000)


class AtUser(_Model):
    """An entry of ``atUsers``: the @-mentioned user's ids."""

    dingtalk_id: str | None = None
    staff_id: str | None = None


class OutgoingMessage(_Model):
    """The JSON body DingTalk POSTs when a user @-mentions the robot (only used fields)."""

    msgtype: str
    text: TextContent | None = None
    msg_id: str | None = None
    create_at: int | None = None
    conversation_type: str | None = None
    conversation_id: str | None = None
    conversation_title: str | None = None
    sender_id: str | None = None
    sender_nick: str | None = None
    sender_corp_id: str | None = None
    sender_staff_id: str | None = None
    session_webhook: str | None = None
    session_webhook_expired_time: int | None = None
    is_admin: bool | None = None
    chatbot_corp_id: str | None = None
    chatbot_user_id: str | None = None
    robot_code: str | None = None
    is_in_at_list: bool | None = None
    at_users: list[AtUser] = Field(default_factory=list)

    @field_validator("sender_staff_id")
    @classmethod
    def _check_staff_id(cls, value: str | None) -> str | None:
        # The sender's identity (mapped to a Quayside user, @-mentioned in the reply): refused
        # unless name characters. InputError, not ValueError, so it leaves model_validate as
        # itself and the gateway answers 400 naming the field.
        if value is not None and value != "" and not is_name(value):
            raise InputError(f"senderStaffId: a DingTalk user id has {RULE}")
        return value

    @property
    def content(self) -> str | None:
        """The message text (stripped), or ``None`` for a non-text message."""
        if self.msgtype != "text" or self.text is None:
            return None
        return self.text.content.strip()

    @property
    def user_id(self) -> str | None:
        """The sender's userid in the organisation (``senderStaffId``), used to find the user."""
        return self.sender_staff_id

    def reply_url(self, now_ms: int, allowed_hosts: Sequence[str] = SESSION_WEBHOOK_HOSTS) -> str:
        """The ``sessionWebhook`` to reply to, after checking it is safe and still valid.

        Args:
            now_ms: the current time in ms.
            allowed_hosts: hosts the URL may point at (``https`` only).

        Returns:
            The session webhook URL.

        Raises:
            InputError: there is no session webhook, it has expired, or it is not an ``https``
                URL on an allowed host (we will not POST to arbitrary URLs).
        """
        url = self.session_webhook
        if not url:
            raise InputError("the callback has no sessionWebhook to reply to")
        if self.session_webhook_expired_time is not None and (
            self.session_webhook_expired_time <= now_ms
        ):
            raise InputError("the callback's sessionWebhook has expired")
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.hostname not in allowed_hosts:
            raise InputError("sessionWebhook is not an https URL on a DingTalk host")
        return url


def reply_payload(
    text: str, at_user_ids: Sequence[str] | None = None, *, markdown_title: str | None = None
) -> dict[str, Any]:
    """A message body for a session webhook or custom robot webhook.

    Args:
        text: the message text (Markdown when ``markdown_title`` is given).
        at_user_ids: userids to @-mention (``at.atUserIds``). For Markdown, DingTalk only
            notifies users whose ``@userid`` appears in the text, so missing ones are appended.
        markdown_title: send a ``markdown`` message with this title instead of ``text``.

    Returns:
        ``{"msgtype": "text", "text": {"content": ...}, "at": {...}}`` or the ``markdown``
        equivalent with ``{"title": ..., "text": ...}``.
    """
    users = [u for u in (at_user_ids or []) if u]
    if len(text) > MAX_REPLY_CHARS:
        text = text[: MAX_REPLY_CHARS - 1] + "…"
    at = {"atUserIds": users, "isAtAll": False}
    if markdown_title is None:
        return {"msgtype": "text", "text": {"content": text}, "at": at}
    missing = [u for u in users if f"@{u}" not in text]
    if missing:
        text = text + "\n\n" + " ".join(f"@{u}" for u in missing)
    return {"msgtype": "markdown", "markdown": {"title": markdown_title, "text": text}, "at": at}
