"""Reconcile a release whose run died with what the hosts actually serve.

A run killed mid-release (SIGKILL, OOM, a lost machine, the whole platform killed) leaves its
ledger release ``running`` and its lock held, while some hosts may have switched and others
not. Reconciling reads each host's ``current`` (the deploy code's own fact reading, through
an executor), then in one ledger transaction writes one row per host saying what it serves
(``switched`` to this release, or ``skipped`` still on another), marks the release
``interrupted`` with the fleet's split in its summary (``3 of 5 hosts on v2, 2 on v1``), and
records one audit event; the dead run's lock is freed. The next deploy or rollback converges
the fleet.

Callers decide that a run is dead (Prefect's crash and cancellation hooks,
``quayside.tasks.release_crash``; the sweep at ``quayside up``, ``quayside.stack.reconcile``;
a release taking over a dead holder's lock); this module imports no Prefect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from quayside.errors import QuaysideError
from quayside.fanout import run_on_hosts
from quayside.inventory.models import Inventory
from quayside.inventory.resolve import Target, resolve_target
from quayside.ledger import locks
from quayside.ledger.models import HostStatus, Release
from quayside.ledger.releases import (
    HostServing,
    list_releases,
    mark_interrupted,
    running_releases,
)
from quayside.release.fleet_summary import NO_RELEASE, UNKNOWN, fleet_counts, fleet_line

Reason = Callable[[Release], str | None]
"""Given a ``running`` release: why its run is dead (``flow run … is Crashed``), or None
while it may still be working."""


@dataclass(frozen=True)
class HostFound:
    """What one host's facts say: the release directory ``current`` points at (None: no
    release of this layout), or why they could not be read."""

    host: str
    current: str | None
    error: str | None = None


@dataclass(frozen=True)
class Reconciled:
    """One release reconciled: ``line`` says what happened in one line naming the hosts."""

    release_id: int
    app: str
    env: str
    line: str
    switched: tuple[str, ...]
    not_switched: tuple[str, ...]
    unreadable: tuple[str, ...]
    lock_freed: bool


def read_served(target: Target) -> list[HostFound]:
    """Each host's ``current``, read through its executor with the deploy code's fact reading
    (one round trip per host, ``max_parallel`` at once); unreachable hosts are reported, not
    raised."""
    from quayside.deploy.host_plan import read_host_facts
    from quayside.deploy.scripts import host_deploy_root
    from quayside.executors.factory import executor_for

    hosts = dict(target.hosts)

    def current(name: str) -> str | None:
        executor = executor_for(name, hosts[name])
        try:
            facts = read_host_facts(executor, host_deploy_root(target.deploy_root, name))
        finally:
            executor.close()
        return facts.current

    result = run_on_hosts(target.host_names, current, max_parallel=target.env.max_parallel)
    return [
        HostFound(o.host, o.value) if o.ok else HostFound(o.host, None, _first_line(o.message))
        for o in result.outcomes
    ]


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


def _labels(engine: Engine, app: str, env: str) -> dict[str, str]:
    """Release directory id -> the version the ledger knows it by (its oldest release)."""
    labels: dict[str, str] = {}
    for row in reversed(list_releases(engine, app, env, limit=500)):
        rid = (row.details or {}).get("release_id")
        if isinstance(rid, str) and rid not in labels:
            labels[rid] = row.version or rid
    return labels


def reconcile_release(
    engine: Engine,
    release: Release,
    found: Sequence[HostFound],
    *,
    actor: str,
    reason: str,
) -> Reconciled | None:
    """Record what ``found`` says the hosts serve for the dead run's ``release``: per-host
    rows, the release ``interrupted``, one audit event; then free the dead run's lock.

    Args:
        engine: the ledger.
        release: a release its run left ``running``.
        found: each host's facts, as read from the hosts (:func:`read_served`).
        actor: who reconciles (``reconcile:crash-hook``, ``reconcile:up``, ...).
        reason: why its run is known to be dead.

    Returns:
        What was recorded, or None if the release had already finished (nothing written).

    Raises:
        LedgerError: the ledger refused the writes (after its busy retries).
    """
    app, env = release.app_name, release.env_name
    rid = (release.details or {}).get("release_id")
    labels = _labels(engine, app, env)
    this = release.version or str(rid)
    rows: list[HostServing] = []
    serving: list[str] = []
    switched: list[str] = []
    stayed: list[str] = []
    unreadable: list[str] = []
    for host in found:
        if host.error is not None:
            rows.append(
                HostServing(host.host, HostStatus.failed, None, f"facts unreadable: {host.error}")
            )
            serving.append(UNKNOWN)
            unreadable.append(host.host)
            continue
        label = labels.get(host.current, host.current) if host.current else NO_RELEASE
        serving.append(label)
        if rid is not None and host.current == rid:
            rows.append(
                HostServing(
                    host.host,
                    HostStatus.switched,
                    host.current,
                    f"serves {this} ({rid}): switched before the run died, never verified",
                )
            )
            switched.append(host.host)
        else:
            where = f"{label} ({host.current})" if host.current else NO_RELEASE
            rows.append(
                HostServing(
                    host.host,
                    HostStatus.skipped,
                    host.current,
                    f"not switched: still serves {where}",
                )
            )
            stayed.append(host.host)
    summary = {
        "result": "interrupted",
        "reason": reason,
        "hosts": len(found),
        "fleet": fleet_counts(serving),
        "switched": switched,
    }
    marked = mark_interrupted(engine, release.id, rows, actor=actor, reason=reason, summary=summary)
    freed = bool(
        release.flow_run_id
        and locks.release_dead(
            engine, app, env, dead_flow_run_id=release.flow_run_id, actor=actor, reason=reason
        )
    )
    if marked is None:
        return None
    fleet = fleet_line(summary) or "no hosts"
    line = f"release {release.id} ({this}) of {app}/{env} interrupted ({reason}): {fleet}"
    if switched:
        line += f"; switched: {', '.join(switched)}"
    if unreadable:
        line += f"; unreadable: {', '.join(unreadable)}"
    return Reconciled(
        release.id, app, env, line, tuple(switched), tuple(stayed), tuple(unreadable), freed
    )


def reconcile_run(
    engine: Engine,
    inventory: Inventory,
    release: Release,
    *,
    actor: str,
    reason: str,
    read: Callable[[Target], list[HostFound]] = read_served,
) -> Reconciled | None:
    """Read the hosts of ``release``'s app/environment and :func:`reconcile_release` it.

    A release whose app or environment is no longer in the inventory, or that names no
    release directory (nothing was put on hosts), is marked interrupted with no host rows.
    """
    hosts: list[HostFound] = []
    if (release.details or {}).get("release_id"):
        try:
            target = resolve_target(inventory, release.app_name, release.env_name)
        except QuaysideError:
            target = None
        if target is not None:
            hosts = read(target)
    return reconcile_release(engine, release, hosts, actor=actor, reason=reason)


def reconcile_dead(
    engine: Engine,
    inventory: Inventory,
    why_dead: Reason,
    *,
    actor: str,
    app: str | None = None,
    env: str | None = None,
    read: Callable[[Target], list[HostFound]] = read_served,
) -> list[Reconciled]:
    """Reconcile every ``running`` release (of ``app``/``env`` if given) whose run
    ``why_dead`` says is dead; releases it cannot reconcile now are left for next time.

    Returns:
        What was recorded, one entry per release interrupted here.
    """
    done: list[Reconciled] = []
    for release in running_releases(engine, app=app, env=env):
        reason = why_dead(release)
        if reason is None:
            continue
        result = reconcile_run(engine, inventory, release, actor=actor, reason=reason, read=read)
        if result is not None:
            done.append(result)
    return done
