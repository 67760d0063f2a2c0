"""Per-host task fan-out for flows: submit one task per host on the flow's task runner (bounded
by ``max_parallel``) and collect per-host outcomes into ``quayside.fanout.GroupResult`` —
one failure never hides the others. Durations are the tasks' own (see the UI)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefect.futures import PrefectFuture, wait

from quayside.fanout import GroupResult, HostOutcome


def collect(futures: dict[str, PrefectFuture[Any]]) -> GroupResult[Any]:
    """Wait for every future and return the outcomes in the order of ``futures``."""
    wait(list(futures.values()))
    outcomes: list[HostOutcome[Any]] = []
    for host, future in futures.items():
        try:
            value = future.result()
        except Exception as e:  # collected per host
            outcomes.append(HostOutcome(host, None, e, None))
        else:
            outcomes.append(HostOutcome(host, value, None, None))
    return GroupResult(tuple(outcomes))


def map_hosts(
    submit: Callable[[str], PrefectFuture[Any]], hosts: Sequence[str], max_parallel: int
) -> GroupResult[Any]:
    """Submit ``submit(host)`` for each host, at most ``max_parallel`` in flight at once."""
    outcomes: list[HostOutcome[Any]] = []
    for start in range(0, len(hosts), max(1, max_parallel)):
        chunk = hosts[start : start + max_parallel]
        outcomes.extend(collect({h: submit(h) for h in chunk}).outcomes)
    return GroupResult(tuple(outcomes))
