"""Gateway settings that are not part of :class:`quayside.settings.Settings`, read from the
environment once when the app is built.

Environment variables:
    QUAYSIDE_GATEWAY_MAX_BODY       largest accepted request body in bytes (65536)
    QUAYSIDE_GATEWAY_HEADER_TIMEOUT seconds a client has to send a request's headers (10)
    QUAYSIDE_GATEWAY_BODY_TIMEOUT   seconds a client has to send a request's body (10)
    QUAYSIDE_GATEWAY_KEEP_ALIVE     seconds an idle connection is kept open (5)
    QUAYSIDE_GATEWAY_AUTH_FAILURES  failed authentications per client address or token id
                                    that the window allows before answering 429 (20)
    QUAYSIDE_GATEWAY_AUTH_WINDOW    the window of that limit in seconds (60)
    QUAYSIDE_GATEWAY_TRUSTED_PROXIES  addresses of reverse proxies whose X-Forwarded-For
                                    names the client, comma separated (none: the client is
                                    the address that connects, whatever a header says)
    QUAYSIDE_GATEWAY_RUN_STARTS     run starts (task API, /api/runs, hooks, chat, publish
                                    page) one gateway process works on at once; more wait
                                    their turn (1: a start takes 0.1-0.4 s, and the console's
                                    reads of the Prefect API stay fast while a burst of
                                    starts is taken one at a time)
    QUAYSIDE_GATEWAY_RUN_START_WAIT seconds a run start of the task API, /api/runs, chat or
                                    the publish page waits for its turn before it is refused
                                    (503 with Retry-After; hooks wait as long as it takes) (30)
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

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from quayside.errors import ConfigError

DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5
DEFAULT_AUTH_FAILURES = 20
DEFAULT_AUTH_WINDOW_S = 60.0
DEFAULT_RUN_STARTS = 1
DEFAULT_RUN_START_WAIT_S = 30.0


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
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S
    auth_failures: int = DEFAULT_AUTH_FAILURES
    auth_window_s: float = DEFAULT_AUTH_WINDOW_S
    trusted_proxies: tuple[str, ...] = ()
    run_starts: int = DEFAULT_RUN_STARTS
    run_start_wait_s: float = DEFAULT_RUN_START_WAIT_S
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
            header_timeout_s=_whole(env, "QUAYSIDE_GATEWAY_HEADER_TIMEOUT", 10, 1, 300),
            body_timeout_s=_whole(env, "QUAYSIDE_GATEWAY_BODY_TIMEOUT", 10, 1, 300),
            keep_alive_s=_whole(env, "QUAYSIDE_GATEWAY_KEEP_ALIVE", 5, 1, 300),
            auth_failures=_whole(env, "QUAYSIDE_GATEWAY_AUTH_FAILURES", 20, 1, 100_000),
            auth_window_s=_whole(env, "QUAYSIDE_GATEWAY_AUTH_WINDOW", 60, 1, 86_400),
            trusted_proxies=_addresses(env, "QUAYSIDE_GATEWAY_TRUSTED_PROXIES"),
            run_starts=_whole(env, "QUAYSIDE_GATEWAY_RUN_STARTS", DEFAULT_RUN_STARTS, 1, 1000),
            run_start_wait_s=_whole(
                env, "QUAYSIDE_GATEWAY_RUN_START_WAIT", int(DEFAULT_RUN_START_WAIT_S), 1, 600
            ),
            dingtalk_app_secret=env.get("QUAYSIDE_DINGTALK_APP_SECRET") or None,
            dingtalk_reply_origins=tuple(origins),
            dingtalk_robot_name=env.get("QUAYSIDE_DINGTALK_ROBOT_NAME") or None,
            git_deploy_deployment=env.get("QUAYSIDE_GIT_DEPLOY_DEPLOYMENT") or "git-deploy",
            rollback_deployment=env.get("QUAYSIDE_ROLLBACK_DEPLOYMENT") or "rollback",
        )


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number (of seconds, or a count) from ``env[name]``, within ``low..high``.

    Raises:
        ConfigError: the value is not a whole number in range (the message names ``name``).
    """
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}: a whole number from {low} to {high}, not {raw[:20]!r}")
    return int(raw)


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """IP addresses or networks from the comma-separated ``env[name]``.

    Raises:
        ConfigError: an item is neither (the message names ``name`` and the item).
    """
    items = [item.strip() for item in env.get(name, "").split(",") if item.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name}: {item[:60]!r} is not an IP address or network like 10.0.0.5 or "
                "10.0.0.0/24"
            ) from None
    return tuple(items)
