"""WeCom (企业微信) group robot as a Prefect notification block."""

from __future__ import annotations

import asyncio

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import NotificationBlock
from pydantic import Field, HttpUrl, SecretStr

from quayside.notify.http import post_json
from quayside.notify.payloads import check_wecom_response, wecom_markdown


class WeComRobot(NotificationBlock):
    """Send Markdown messages to a WeCom (企业微信) group through a group robot (群机器人).

    Messages are POSTed as ``{"msgtype": "markdown", "markdown": {"content": ...}}`` to
    ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY``
    (https://developer.work.weixin.qq.com/document/path/91770); content over 4096 bytes is cut.
    WeCom answers HTTP 200 even when it refuses a message; a non-zero ``errcode`` (e.g. 93000
    invalid webhook url) raises like an HTTP error does. The URL (its ``key`` is the
    credential) never appears in logs or error messages.

    Args:
        webhook_url: the robot's webhook URL with ``key`` (secret).
        timeout_s: seconds to wait for WeCom.

    Example:
        ```python
        from quayside.blocks.notify_wecom import WeComRobot

        WeComRobot(
            webhook_url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...",
        ).save("ops")
        WeComRobot.load("ops").notify("**web** is on prod", subject="web released")
        ```
        In quayside.yaml: ``notify: [quayside-wecom-robot/ops]``.
    """

    _block_type_name = "Quayside WeCom Robot"
    _block_type_slug = "quayside-wecom-robot"
    _description = "Send release notifications to a WeCom (企业微信) group robot."
    _documentation_url = HttpUrl("https://developer.work.weixin.qq.com/document/path/91770")

    webhook_url: SecretStr = Field(
        title="Webhook URL",
        description="The robot's webhook URL with its key; kept secret.",
        examples=["https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=XXXX"],
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Seconds to wait.")

    def _send(self, body: str, subject: str | None) -> None:
        content = body if not subject or subject in body else f"**{subject}**\n\n{body}"
        answer = post_json(
            self.webhook_url.get_secret_value().strip(),
            wecom_markdown(content),
            service="WeCom",
            timeout_s=self.timeout_s,
        )
        check_wecom_response(answer)

    async def anotify(self, body: str, subject: str | None = None) -> None:
        """Send ``body`` as a Markdown message (async; see :meth:`notify`)."""
        await asyncio.to_thread(self._send, body, subject)

    @async_dispatch(anotify)
    def notify(self, body: str, subject: str | None = None) -> None:  # type: ignore[override]
        """Send ``body`` as a Markdown message, with ``subject`` as a bold first line.

        Args:
            body: the Markdown text.
            subject: a bold first line (omitted when the body already contains it).

        Raises:
            SendError: WeCom could not be reached, answered HTTP non-2xx, or refused the
                message (non-zero ``errcode``). Never contains the URL.
        """
        self._send(body, subject)
