"""Gateway settings that are not part of :class:`quayside.settings.Settings`, read from the
environment once when the app is built.

Environment variables:
    QUAYSIDE_GATEWAY_MAX_BODY       largest accepted request body in bytes (65536)
    QUAYSIDE_DINGTALK_APP_SECRET    the DingTalk robot's appSecret (else the inventory secret
                                    ``dingtalk_app_secret``)
    QUAYSIDE_DINGTALK_REPLY_HOSTS   extra origins a callback's sessionWebhook may point at,
                                    comma separated, e.g. ``http://127.0.0.1:8765`` (tests, a
                                    proxy); DingTalk's own https hosts are always allowed
    QUAYSIDE_DINGTALK_ROBOT_NAME    the robot's display name, removed from ``@name`` mentions
    QUAYSIDE_GIT_DEPLOY_DEPLOYMENT  catalogue entry started for git tags and chat deploys
                                    (``git-deploy``)
    QUAYSIDE_ROLLBACK_DEPLOYMENT    catalogue entry started for chat rollbacks (``rollback``)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from quayside.errors import ConfigError

DEFAULT_MAX_BODY = 64 * 1024


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` with the default port made explicit.

    Args:
        url: an absolute http(s) URL.

    Returns:
        The normalised origin, lower case; ``""`` when the URL has no scheme or host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


@dataclass(frozen=True)
class GatewayConfig:
    """What the gateway needs beyond the platform settings."""

    max_body_bytes: int = DEFAULT_MAX_BODY
    dingtalk_app_secret: str | None = field(default=None, repr=False)
    dingtalk_reply_origins: tuple[str, ...] = ()
    dingtalk_robot_name: str | None = None
    git_deploy_deployment: str = "git-deploy"
    rollback_deployment: str = "rollback"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        """Read the configuration from ``env`` (default ``os.environ``).

        Raises:
            ConfigError: a value is malformed (the message names the variable).
        """
        env = os.environ if env is None else env
        raw_max = env.get("QUAYSIDE_GATEWAY_MAX_BODY", str(DEFAULT_MAX_BODY)).strip()
        if not raw_max.isdigit() or not 1024 <= int(raw_max) <= 16 * 1024 * 1024:
            raise ConfigError("QUAYSIDE_GATEWAY_MAX_BODY: a number of bytes from 1024 to 16777216")
        origins: list[str] = []
        for item in env.get("QUAYSIDE_DINGTALK_REPLY_HOSTS", "").split(","):
            if not item.strip():
                continue
            origin = origin_of(item)
            if not origin:
                raise ConfigError(
                    f"QUAYSIDE_DINGTALK_REPLY_HOSTS: {item.strip()[:80]!r} is not an origin "
                    "like http://127.0.0.1:8765"
                )
            origins.append(origin)
        return cls(
            max_body_bytes=int(raw_max),
            dingtalk_app_secret=env.get("QUAYSIDE_DINGTALK_APP_SECRET") or None,
            dingtalk_reply_origins=tuple(origins),
            dingtalk_robot_name=env.get("QUAYSIDE_DINGTALK_ROBOT_NAME") or None,
            git_deploy_deployment=env.get("QUAYSIDE_GIT_DEPLOY_DEPLOYMENT") or "git-deploy",
            rollback_deployment=env.get("QUAYSIDE_ROLLBACK_DEPLOYMENT") or "rollback",
        )
