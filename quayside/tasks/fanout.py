"""Host fan-out for flows, collected per host into ``quayside.fanout.GroupResult`` (one
failure never hides the others), in one of two shapes:

- :func:`fan_out`: ONE task run for a group of hosts ("deploy: 20 host(s)"), the hosts in
  threads inside it (``quayside.fanout.run_on_hosts``). For release steps, where every host
  must start at once: a Prefect task run costs about 18 ms of the flow's CPU to start and
  record (``prefect_flow_noop_task_per_host_s`` in bench/results.json), so 20 per-host task
  runs started their hosts over 0.3 s. Per-host results go to the run's table and progress
  artifacts and its log.
- :func:`map_hosts`: one task run per host, for tasks that carry their own Prefect retries
  (``quayside.tasks.hosts.run_command``)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, wait

from quayside.fanout import GroupResult, HostOutcome, run_on_hosts
from quayside.tasks.params import opaque

T = TypeVar("T")


@task(task_run_name="{action}: {count} host(s)", cache_policy=NO_CACHE)
def _on_hosts(
    action: str, count: int, run: Callable[[str], Any], hosts: list[str], max_parallel: int
) -> GroupResult[Any]:
    context = contextvars.copy_context()  # this task run's: its logger, settings, client
    return run_on_hosts(hosts, lambda h: context.copy().run(run, h), max_parallel=max_parallel)


def fan_out(
    action: str, run: Callable[[str], T], hosts: Sequence[str], max_parallel: int
) -> GroupResult[T]:
    """``run(host)`` for every host, at most ``max_parallel`` at once, in one task run named
    ``"<action>: <n> host(s)"``; an exception from ``run`` is that host's outcome.

    Example:
        >>> fan_out("deploy", lambda h: deploy_to_host(h, hosts[h], spec), names, 20).ok
        True
    """
    if not hosts:
        return GroupResult(())
    result: GroupResult[T] = _on_hosts(action, len(hosts), opaque(run), list(hosts), max_parallel)
    return result


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
