"""Request bodies for chat robots, built exactly as their public documentation shows.

DingTalk custom robot, ``markdown`` message (机器人消息类型,
https://open.dingtalk.com/document/development/robot-message-type)::

    {"msgtype": "markdown",
     "markdown": {"title": "...", "text": "..."},
     "at": {"atMobiles": ["150XXXXXXXX"], "isAtAll": false}}

A mobile is only notified when ``@<mobile>`` also appears in ``text``.

WeCom (企业微信) group robot, ``markdown`` message (群机器人配置说明,
https://developer.work.weixin.qq.com/document/path/91770)::

    {"msgtype": "markdown", "markdown": {"content": "..."}}

``content`` is at most 4096 bytes of UTF-8. The answer is ``{"errcode": 0, "errmsg": "ok"}``;
anything else (e.g. ``93000`` invalid webhook url, ``40058`` content too long) arrives with
HTTP 200.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from quayside.notify.errors import SendError

WECOM_MARKDOWN_MAX_BYTES: Final = 4096
"""WeCom's documented limit for ``markdown.content``."""
DINGTALK_MARKDOWN_MAX_BYTES: Final = 20_000
"""Our limit for a DingTalk Markdown text (keeps messages readable and well below the API's)."""


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """``text`` cut so that its UTF-8 encoding is at most ``max_bytes`` (never mid-character).

    Args:
        text: the text.
        max_bytes: the largest allowed encoded size.
        marker: appended when something was cut (counted in the limit).

    Returns:
        ``text`` unchanged if it fits, else its longest prefix that fits plus ``marker``.
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    room = max(0, max_bytes - len(marker.encode("utf-8")))
    return data[:room].decode("utf-8", errors="ignore") + marker


def dingtalk_markdown(
    title: str,
    text: str,
    *,
    at_mobiles: Sequence[str] = (),
    at_all: bool = False,
) -> dict[str, Any]:
    """A DingTalk custom robot ``markdown`` message.

    Args:
        title: shown in the conversation list and notification (not in the message).
        text: the Markdown body.
        at_mobiles: mobiles to @-mention; ``@<mobile>`` is appended to the text for those
            missing there, since DingTalk only notifies mentions present in the text.
        at_all: @-mention everyone.

    Returns:
        The JSON body to POST.
    """
    mobiles = [m.strip() for m in at_mobiles if m and m.strip()]
    missing = [m for m in mobiles if f"@{m}" not in text]
    suffix = ("\n\n" + " ".join(f"@{m}" for m in missing)) if missing else ""
    body = truncate_utf8(text, DINGTALK_MARKDOWN_MAX_BYTES - len(suffix.encode())) + suffix
    return {
        "msgtype": "markdown",
        "markdown": {"title": title.strip() or "Quayside", "text": body},
        "at": {"atMobiles": mobiles, "isAtAll": bool(at_all)},
    }


def wecom_markdown(content: str) -> dict[str, Any]:
    """A WeCom group robot ``markdown`` message, cut to 4096 UTF-8 bytes.

    Args:
        content: the Markdown text (WeCom supports headings, bold, links, quotes, ``<font>``).

    Returns:
        The JSON body to POST.
    """
    return {
        "msgtype": "markdown",
        "markdown": {"content": truncate_utf8(content, WECOM_MARKDOWN_MAX_BYTES)},
    }


def check_wecom_response(payload: object) -> None:
    """Check WeCom's answer to a robot message (HTTP 200 does not mean success).

    Args:
        payload: the decoded JSON response.

    Raises:
        SendError: the response is not ``{"errcode": 0, ...}``; carries ``code`` and the start
            of ``errmsg`` (which never contains the key).
    """
    if not isinstance(payload, Mapping) or "errcode" not in payload:
        raise SendError("WeCom answered without an errcode")
    code = payload.get("errcode")
    if isinstance(code, bool) or not isinstance(code, int):
        raise SendError("WeCom answered with a non-numeric errcode")
    if code != 0:
        message = str(payload.get("errmsg") or "")[:200]
        raise SendError(f"WeCom refused the message: errcode {code}: {message}", code=code)
