"""``python -m quayside.stack.services_health [--timeout SECONDS]``: is the process running
Prefect's background services (``prefect server services start``, the compose service
``prefect-services``) alive and doing its job?

That process serves nothing a health check could ask (Prefect 3.8.8 gives it no port and no
health endpoint), and a process that exists may still be wedged (SIGSTOPped, a dead event
loop). So the check asks for its work: it sends one probe event to the API server, which
publishes it to the messaging broker (Redis), and waits until the services process's event
persister has written it to Prefect's database, where the API can read it. The same path
carries every run's heartbeats to the automation that marks a dead run Crashed, so a failing
check means that safety net is down too. Each check stores one small event (Prefect's event
retention removes it).

Exit 0 with one line when the probe came back; 1 naming the services process and what to do
when it did not (or the API server could not be asked). Reads the API's address and
credentials as every Quayside client does: ``PREFECT_API_URL``, ``PREFECT_API_AUTH_STRING``
or the file ``QUAYSIDE_PREFECT_AUTH_STRING_FILE`` names (a compose healthcheck does not go
through the entrypoint that exports the string).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from quayside.errors import QuaysideError
from quayside.runs.prefect_http import PrefectHTTP

PROBE_EVENT = "quayside.services-health.probe"
PROBE_RESOURCE = "quayside.services-health"
DEFAULT_TIMEOUT_S = 20.0
"""Prefect's event persister writes what it received at least every 5 s (its flush interval)."""
POLL_S = 0.5
SERVICES = "Prefect's background services (`prefect server services start`, prefect-services)"


class ServicesUnhealthy(QuaysideError):
    """The services process did not do its job in time: dead, stopped or wedged."""

    hint = (
        "look at the prefect-services process (`docker-compose ps prefect-services`, "
        "`docker-compose logs --tail 100 prefect-services`) and restart it "
        "(`docker-compose restart prefect-services`); check Redis too, which carries the probe"
    )


def probe(
    http: PrefectHTTP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Send one probe event through the API server and wait for the services process to have
    persisted it.

    Args:
        http: a client of the Prefect API.
        timeout_s: how long the services process gets to persist the event.
        clock, sleep: for tests.

    Returns:
        Seconds from sending the event to reading it back.

    Raises:
        ServicesUnhealthy: the event was not persisted within ``timeout_s``.
        QuaysideError: the API server did not take the event or answer the read (its own
            error, naming the API).
    """
    event_id = str(uuid4())
    occurred = datetime.now(UTC)
    http.call(
        "POST",
        "/events",
        [
            {
                "id": event_id,
                "occurred": occurred.isoformat(),
                "event": PROBE_EVENT,
                "resource": {"prefect.resource.id": PROBE_RESOURCE},
            }
        ],
    )
    query = {
        "filter": {
            "id": {"id": [event_id]},
            "occurred": {
                "since": (occurred - timedelta(minutes=1)).isoformat(),
                "until": (occurred + timedelta(minutes=1)).isoformat(),
            },
        },
        "limit": 1,
    }
    started = clock()
    while True:
        answer = http.call("POST", "/events/filter", query)
        if answer and answer.get("events"):
            return clock() - started
        if clock() - started >= timeout_s:
            raise ServicesUnhealthy(
                f"{SERVICES} did not persist a probe event within {timeout_s:g} s "
                f"(the API server at {http.url} took it): the process is dead, stopped or "
                "wedged, or cannot read the messaging broker"
            )
        sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m quayside.stack.services_health",
        description="Check that Prefect's background services process is alive and working.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds the services process gets to persist the probe (default %(default)g)",
    )
    args = parser.parse_args(argv)
    try:
        with PrefectHTTP(timeout_s=10) as http:
            took = probe(http, args.timeout)
    except QuaysideError as e:
        print(f"unhealthy: {e}", file=sys.stderr)
        if e.hint:
            print(f"next: {e.hint}", file=sys.stderr)
        return 1
    print(f"healthy: {SERVICES} persisted a probe event in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
