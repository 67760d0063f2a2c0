"""DingTalk outgoing-robot callbacks built as DingTalk builds them (tests/fixtures/dingtalk has
the documented example and the doc reference): the ``timestamp`` header in milliseconds and
``sign`` = Base64(HMAC-SHA256(app secret, "<timestamp>\\n<app secret>"))."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

FIXTURE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "dingtalk" / "outgoing_text.json").read_text(
        encoding="utf-8"
    )
)


def sign(timestamp: str, secret: str) -> str:
    """The ``sign`` header DingTalk sends with ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def callback(
    text: str,
    *,
    secret: str,
    staff_id: str | None = None,
    session_webhook: str | None = None,
    timestamp: str | None = None,
    signature: str | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """(JSON body, headers) of a signed callback carrying ``text`` from ``staff_id``; a fresh
    ``msgId`` each time. ``timestamp``/``signature`` override the computed ones."""
    now = str(int(time.time() * 1000)) if timestamp is None else timestamp
    body = copy.deepcopy(FIXTURE["body"])
    body["text"]["content"] = text
    body["msgId"] = uuid.uuid4().hex
    body["sessionWebhookExpiredTime"] = int(time.time() * 1000) + 3_600_000
    if session_webhook is not None:
        body["sessionWebhook"] = session_webhook
    if staff_id is not None:
        body["senderStaffId"] = staff_id
    headers = {"timestamp": now, "sign": signature if signature is not None else sign(now, secret)}
    return body, headers
