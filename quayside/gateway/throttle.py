"""Failed-authentication throttle: after too many failures from one client address (or
against one API token id) within a window, the gateway answers 429 with ``Retry-After``
without checking anything.

Only failures count (every 401 the gateway answers); a success neither counts nor clears
earlier failures. Memory is bounded: at most ``max_keys`` keys of at most ``max_failures``
timestamps each; when full, the key that failed least recently is forgotten first.

Keys are ``addr:<client address>`` -- an IPv6 client by its /64, which one host usually
owns whole -- and ``token:<id>`` for a bearer token shaped like ``qs_<id>_<secret>``, so
guessing the secret of one token from many addresses is limited too. The address is what
uvicorn reports: behind a reverse proxy on this host, the proxy must send
``X-Forwarded-For`` (uvicorn trusts it from 127.0.0.1), or every client shares the proxy's
address and one client's failures lock out all of them.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.types import Scope

DEFAULT_MAX_FAILURES = 20
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_KEYS = 10_000
_BEARER_TOKEN_ID = re.compile(rb"\s*(?i:bearer)\s+qs_([0-9a-f]{12})_")


@dataclass(frozen=True)
class Blocked:
    """A refused request: which key is over the limit and for how many more seconds."""

    key: str
    retry_after_s: int

    def describe(self) -> str:
        """``from address 10.0.0.7`` / ``for token qs_0123456789ab_…``."""
        kind, _, value = self.key.partition(":")
        return f"for token qs_{value}_…" if kind == "token" else f"from address {value}"


class FailureThrottle:
    """Counts failures per key in a sliding window; thread-safe."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Allow ``max_failures`` failures per key within any ``window_s`` seconds.

        Raises:
            ValueError: a limit is not positive.
        """
        if max_failures < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("max_failures, window_s and max_keys must be positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, keys: Iterable[str]) -> Blocked | None:
        """The key among ``keys`` that is over the limit (the longest wait first), or None."""
        now = self._clock()
        worst: Blocked | None = None
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                if times is None or len(times) < self.max_failures:
                    continue
                wait = times[0] + self.window_s - now  # the oldest failure leaves the window
                if wait > 0 and (worst is None or wait > worst.retry_after_s):
                    worst = Blocked(key, max(1, math.ceil(wait)))
        return worst

    def record_failure(self, keys: Iterable[str]) -> None:
        """Count one failed authentication against each of ``keys``."""
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                if times is None:
                    times = self._failures[key] = deque(maxlen=self.max_failures)
                else:
                    self._failures.move_to_end(key)
                times.append(now)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def __len__(self) -> int:
        """How many keys are remembered."""
        with self._lock:
            return len(self._failures)


def client_keys(scope: Scope) -> list[str]:
    """The throttle keys of an ASGI request: its client address and its bearer token id."""
    keys: list[str] = []
    client = scope.get("client")
    if client:
        keys.append(f"addr:{_address_key(str(client[0]))}")
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            match = _BEARER_TOKEN_ID.match(value)
            if match:
                keys.append(f"token:{match.group(1).decode('ascii')}")
            break
    return keys


def _address_key(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # a unix socket path or a name: as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)
