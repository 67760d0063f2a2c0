"""The failed-authentication throttle (no server): sliding window, Retry-After, bounded memory,
the keys of a request; and the gateway's limit settings with messages naming the variable."""

from __future__ import annotations

from typing import Any

import pytest

from quayside.errors import ConfigError
from quayside.gateway.config import GatewayConfig
from quayside.gateway.throttle import Blocked, FailureThrottle, client_keys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_the_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, 60, clock=clock)
    for _ in range(2):
        throttle.record_failure(["addr:10.0.0.7"])
        clock.now += 10
    assert throttle.blocked(["addr:10.0.0.7"]) is None  # 2 of 3
    throttle.record_failure(["addr:10.0.0.7"])  # failures at 1000, 1010, 1020
    assert throttle.blocked(["addr:10.0.0.7"]) == Blocked("addr:10.0.0.7", 40)
    assert throttle.blocked(["addr:10.0.0.8"]) is None  # another client is not affected
    clock.now = 1059.5
    assert throttle.blocked(["addr:10.0.0.7"]) == Blocked("addr:10.0.0.7", 1)
    clock.now = 1060.0  # the failure of 1000 is out of the window: 2 left
    assert throttle.blocked(["addr:10.0.0.7"]) is None
    throttle.record_failure(["addr:10.0.0.7"])
    assert throttle.blocked(["addr:10.0.0.7"]) == Blocked("addr:10.0.0.7", 10)


def test_the_longest_wait_of_several_keys_wins() -> None:
    clock = Clock()
    throttle = FailureThrottle(2, 60, clock=clock)
    throttle.record_failure(["token:aaaaaaaaaaaa"])
    clock.now += 30
    throttle.record_failure(["addr:10.0.0.7", "token:aaaaaaaaaaaa"])
    throttle.record_failure(["addr:10.0.0.7"])
    blocked = throttle.blocked(["addr:10.0.0.7", "token:aaaaaaaaaaaa"])
    assert blocked == Blocked("addr:10.0.0.7", 60)
    assert blocked.describe() == "from address 10.0.0.7"
    assert Blocked("token:aaaaaaaaaaaa", 5).describe() == "for token qs_aaaaaaaaaaaa_…"


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = FailureThrottle(5, 60, max_keys=100, clock=clock)
    for n in range(10_000):
        for _ in range(10):
            throttle.record_failure([f"token:{n:012x}"])
    assert len(throttle) == 100
    assert all(len(times) <= 5 for times in throttle._failures.values())
    assert throttle.blocked([f"token:{9_999:012x}"]) is not None  # the newest are kept
    assert throttle.blocked([f"token:{0:012x}"]) is None  # the oldest were forgotten


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        FailureThrottle(0, 60)


def scope(client: str | None, authorization: bytes | None = None) -> dict[str, Any]:
    headers = [(b"host", b"gateway")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    return {"type": "http", "client": (client, 5555) if client else None, "headers": headers}


@pytest.mark.parametrize(
    ("client", "authorization", "keys"),
    [
        ("10.0.0.7", None, ["addr:10.0.0.7"]),
        (
            "10.0.0.7",
            b"Bearer qs_0123456789ab_" + b"f" * 64,
            ["addr:10.0.0.7", "token:0123456789ab"],
        ),
        ("10.0.0.7", b"bearer  qs_0123456789ab_x", ["addr:10.0.0.7", "token:0123456789ab"]),
        ("10.0.0.7", b"Bearer not-a-token", ["addr:10.0.0.7"]),
        ("10.0.0.7", b"Basic qs_0123456789ab_x", ["addr:10.0.0.7"]),
        ("10.0.0.7", b"Bearer QS_0123456789AB_x", ["addr:10.0.0.7"]),
        ("2001:db8:1:2:3:4:5:6", None, ["addr:2001:db8:1:2::/64"]),
        ("2001:db8:1:2:ffff::1", None, ["addr:2001:db8:1:2::/64"]),
        ("::ffff:10.0.0.7", None, ["addr:10.0.0.7"]),
        ("127.0.0.1", None, ["addr:127.0.0.1"]),
        (None, b"Bearer qs_0123456789ab_x", ["token:0123456789ab"]),
    ],
)
def test_client_keys(client: str | None, authorization: bytes | None, keys: list[str]) -> None:
    assert client_keys(scope(client, authorization)) == keys


def test_limit_settings_from_the_environment() -> None:
    config = GatewayConfig.from_env(
        {
            "QUAYSIDE_GATEWAY_HEADER_TIMEOUT": "7",
            "QUAYSIDE_GATEWAY_BODY_TIMEOUT": "8",
            "QUAYSIDE_GATEWAY_KEEP_ALIVE": "2",
            "QUAYSIDE_GATEWAY_AUTH_FAILURES": "5",
            "QUAYSIDE_GATEWAY_AUTH_WINDOW": "120",
        }
    )
    assert (config.header_timeout_s, config.body_timeout_s, config.keep_alive_s) == (7, 8, 2)
    assert (config.auth_failures, config.auth_window_s) == (5, 120)
    defaults = GatewayConfig.from_env({})
    assert (defaults.header_timeout_s, defaults.body_timeout_s, defaults.keep_alive_s) == (
        10,
        10,
        5,
    )
    assert (defaults.auth_failures, defaults.auth_window_s) == (20, 60)


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "ten", "301"])
def test_bad_limit_settings_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        GatewayConfig.from_env({"QUAYSIDE_GATEWAY_BODY_TIMEOUT": value})
    assert raised.value.message == (
        f"QUAYSIDE_GATEWAY_BODY_TIMEOUT: a whole number from 1 to 300, not {value!r}"
    )


def test_trusted_proxies() -> None:
    assert GatewayConfig.from_env({}).trusted_proxies == ()
    config = GatewayConfig.from_env({"QUAYSIDE_GATEWAY_TRUSTED_PROXIES": "10.0.0.5, fd00::/8"})
    assert config.trusted_proxies == ("10.0.0.5", "fd00::/8")
    with pytest.raises(ConfigError) as raised:
        GatewayConfig.from_env({"QUAYSIDE_GATEWAY_TRUSTED_PROXIES": "10.0.0.5,proxy.local"})
    assert raised.value.message.startswith(
        "QUAYSIDE_GATEWAY_TRUSTED_PROXIES: 'proxy.local' is not an IP address or network"
    )
