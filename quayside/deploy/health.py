"""Health checks: an HTTP probe from the worker, or a command on the host; retried until a
deadline. Sleeps only between failed attempts, so a healthy release costs one probe."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import httpx

from quayside.deploy.errors import HealthCheckFailed
from quayside.deploy.source import command_argv
from quayside.errors import CommandTimeout
from quayside.inventory.models import HealthCheck

if TYPE_CHECKING:
    from quayside.deploy.round_trips import RoundTrips

#: one attempt: returns None when healthy, else why not
Probe = Callable[[], str | None]


def http_probe(url: str, timeout_s: float) -> Probe:
    """A probe that GETs ``url`` (no redirects followed) and wants a 2xx or 3xx answer."""

    def probe() -> str | None:
        try:
            response = httpx.get(url, timeout=timeout_s, follow_redirects=False)
        except httpx.HTTPError as e:
            return f"GET {url}: {type(e).__name__}: {e}"
        if response.status_code >= 400:
            return f"GET {url}: HTTP {response.status_code}"
        return None

    return probe


def probe_url(check: HealthCheck, *, host: str, address: str) -> str | None:
    """The check's URL for one host: ``{host}`` and ``{address}`` are replaced by the
    inventory name and address of the host; None for a command check."""
    if check.url is None:
        return None
    return check.url.replace("{host}", host).replace("{address}", address)


def wait_healthy(
    check: HealthCheck,
    probe: Probe,
    *,
    host: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run ``probe`` until it passes, at most ``check.retries + 1`` times and no longer than
    the deadline ``(retries + 1) * (timeout_s + interval_s)``.

    Args:
        check: the environment's health check settings.
        probe: one attempt; None means healthy.
        host: named in the error.
        sleep: waits between attempts (injected in tests).
        clock: monotonic clock (injected in tests).

    Returns:
        The number of attempts made.

    Raises:
        HealthCheckFailed: still unhealthy after the last attempt or past the deadline.
    """
    attempts = check.retries + 1
    deadline = clock() + attempts * (check.timeout_s + check.interval_s)
    why = "not probed"
    for attempt in range(1, attempts + 1):
        why = probe() or ""
        if not why:
            return attempt
        if attempt == attempts or clock() + check.interval_s > deadline:
            break
        sleep(check.interval_s)
    raise HealthCheckFailed(host, f"health check failed after {attempt} attempt(s): {why}")


def check_health(
    trips: RoundTrips,
    check: HealthCheck,
    *,
    host: str,
    address: str,
    env: Mapping[str, str],
    cwd: str,
) -> int:
    """Probe the host (by HTTP from here, or a command there) until healthy; returns the
    attempts made.

    Raises:
        HealthCheckFailed: still unhealthy after the retries / deadline.
    """
    url = probe_url(check, host=host, address=address)
    if url is not None:
        return wait_healthy(check, http_probe(url, check.timeout_s), host=host)
    assert check.command is not None
    argv = command_argv(check.command)

    def probe() -> str | None:
        try:
            result = trips.result(argv, env=env, cwd=cwd, timeout=check.timeout_s, check=False)
        except CommandTimeout:
            return f"command timed out after {check.timeout_s:g}s"
        if result.ok:
            return None
        lines = result.stderr.strip().splitlines()
        return f"exit {result.exit_code}: {lines[0]}" if lines else f"exit {result.exit_code}"

    return wait_healthy(check, probe, host=host)
