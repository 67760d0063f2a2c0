"""Signing and checking DingTalk robot messages, shared by both directions: the outbound
robot messages (:mod:`quayside.blocks.notify_dingtalk`, the gateway's chat replies) and the
inbound callback check (:mod:`quayside.triggers.dingtalk`) use the same HMAC, so it lives here,
on the outbound side, which imports nothing inbound.

Custom group robot with 加签 (https://open.dingtalk.com/document/group/custom-robot-access):
the webhook URL gets ``&timestamp=<ms>&sign=<urlencode(base64(HmacSHA256(secret,
timestamp + "\\n" + secret)))>``; the reply is ``{"errcode": 0, "errmsg": "ok"}`` and a non-zero
``errcode`` (e.g. 310000 "sign not match") means the message was refused despite HTTP 200.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from quayside.errors import InputError
from quayside.notify.errors import SendError


def compute_signature(timestamp: str, secret: str) -> str:
    """``base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret))``, not URL-encoded.

    Args:
        timestamp: milliseconds since the epoch, as sent/received (a string of digits).
        secret: the robot's appSecret (callbacks) or SEC... secret (custom robot).

    Returns:
        The Base64 signature.
    """
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_webhook_url(base_url: str, secret: str, now_ms: int) -> str:
    """Add ``timestamp`` and ``sign`` (加签) to a custom robot webhook URL.

    Args:
        base_url: ``https://oapi.dingtalk.com/robot/send?access_token=...``.
        secret: the robot's ``SEC...`` signing secret.
        now_ms: the current time in ms since the epoch (DingTalk accepts ±1 hour).

    Returns:
        The URL with ``timestamp`` and the URL-encoded ``sign`` appended (replacing any
        previous ones).

    Raises:
        InputError: the URL is not http(s) or no secret is given.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InputError("DingTalk webhook URL must be an http(s) URL")
    if not secret:
        raise InputError("DingTalk signing secret is empty")
    timestamp = str(int(now_ms))
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("timestamp", "sign")
    ]
    query += [("timestamp", timestamp), ("sign", compute_signature(timestamp, secret))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def check_send_response(payload: object) -> None:
    """Check DingTalk's answer to a robot message (HTTP 200 does not mean success).

    Args:
        payload: the decoded JSON response.

    Raises:
        SendError: the response is not ``{"errcode": 0, ...}``; carries ``code`` and the
            ``errmsg`` text.
    """
    if not isinstance(payload, Mapping) or "errcode" not in payload:
        raise SendError("DingTalk answered without an errcode")
    code = payload.get("errcode")
    if isinstance(code, bool) or not isinstance(code, int):
        raise SendError("DingTalk answered with a non-numeric errcode")
    if code != 0:
        message = str(payload.get("errmsg") or "")[:200]
        raise SendError(f"DingTalk refused the message: errcode {code}: {message}", code=code)
