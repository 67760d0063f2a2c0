"""DingTalk (钉钉) custom group robot as a Prefect notification block."""

from __future__ import annotations

import asyncio
import time

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import NotificationBlock
from pydantic import Field, HttpUrl, SecretStr

from quayside.notify.dingtalk_signing import check_send_response, signed_webhook_url
from quayside.notify.http import post_json
from quayside.notify.payloads import dingtalk_markdown


class DingTalkRobot(NotificationBlock):
    """Send Markdown messages to a DingTalk group through a custom robot (自定义机器人).

    With 加签 (signing) enabled on the robot, set ``secret`` to its ``SEC...`` value: every
    message is sent to the webhook URL plus ``timestamp`` and ``sign``
    (https://open.dingtalk.com/document/group/custom-robot-access). DingTalk answers HTTP 200
    even when it refuses a message; a non-zero ``errcode`` (e.g. 310000 "sign not match")
    raises like an HTTP error does. The webhook URL and the secret never appear in logs or
    error messages.

    Args:
        webhook_url: ``https://oapi.dingtalk.com/robot/send?access_token=...`` (secret).
        secret: the robot's 加签 secret ``SEC...``; leave empty for keyword/IP security.
        at_mobiles: mobiles to @-mention in every message.
        at_all: @-mention everyone in the group.
        timeout_s: seconds to wait for DingTalk.

    Example:
        ```python
        from quayside.blocks.notify_dingtalk import DingTalkRobot

        DingTalkRobot(
            webhook_url="https://oapi.dingtalk.com/robot/send?access_token=...",
            secret="SEC...",
        ).save("ops")
        DingTalkRobot.load("ops").notify("**web** is on prod", subject="web released")
        ```
        In quayside.yaml: ``notify: [quayside-dingtalk-robot/ops]``.
    """

    _block_type_name = "Quayside DingTalk Robot"
    _block_type_slug = "quayside-dingtalk-robot"
    _description = "Send release notifications to a DingTalk group robot (signed webhook)."
    _documentation_url = HttpUrl("https://open.dingtalk.com/document/group/custom-robot-access")

    webhook_url: SecretStr = Field(
        title="Webhook URL",
        description="The robot's webhook URL with its access_token; kept secret.",
        examples=["https://oapi.dingtalk.com/robot/send?access_token=XXXX"],
    )
    secret: SecretStr | None = Field(
        default=None,
        title="Signing secret (加签)",
        description="The SEC... secret shown when 加签 is enabled; empty if not used.",
    )
    at_mobiles: list[str] = Field(
        default_factory=list, description="Mobiles to @-mention in every message."
    )
    at_all: bool = Field(default=False, description="@-mention everyone in the group.")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Seconds to wait.")

    def _url(self) -> str:
        url = self.webhook_url.get_secret_value().strip()
        secret = self.secret.get_secret_value().strip() if self.secret is not None else ""
        if not secret:
            return url
        return signed_webhook_url(url, secret, int(time.time() * 1000))

    def _send(self, body: str, subject: str | None) -> None:
        first = body.strip().splitlines()[0].lstrip("# ").strip() if body.strip() else ""
        title = (subject or first or "Quayside").strip()
        payload = dingtalk_markdown(
            title[:100], body, at_mobiles=self.at_mobiles, at_all=self.at_all
        )
        answer = post_json(self._url(), payload, service="DingTalk", timeout_s=self.timeout_s)
        check_send_response(answer)

    async def anotify(self, body: str, subject: str | None = None) -> None:
        """Send ``body`` as a Markdown message (async; see :meth:`notify`)."""
        await asyncio.to_thread(self._send, body, subject)

    @async_dispatch(anotify)
    def notify(self, body: str, subject: str | None = None) -> None:  # type: ignore[override]
        """Send ``body`` as a Markdown message titled ``subject``.

        Args:
            body: the Markdown text.
            subject: the title shown in the conversation list (the first line if omitted).

        Raises:
            SendError: DingTalk could not be reached, answered HTTP non-2xx, or refused the
                message (non-zero ``errcode``). Never contains the URL or the secret.
            InputError: the webhook URL is not http(s).
        """
        self._send(body, subject)
