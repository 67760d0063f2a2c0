"""Reconcile a release whose run died with what the hosts actually serve.

A run killed mid-release (SIGKILL, OOM, a lost machine, the whole platform killed) leaves its
ledger release ``running`` and its lock held, while some hosts may have switched and others
not. Reconciling reads what each host serves, the way its kind says
(:data:`quayside.release.served.SERVED_BY`: a git release's ``current``, a config release's
live version directory), through an executor, then in one ledger transaction writes one row
per host saying what it serves (``switched`` to this release, or ``skipped`` still on
another), marks the release ``interrupted`` with the fleet's split in its summary (``3 of 5
hosts on v2, 2 on v1``), and records one audit event; the dead run's lock is freed. The next
deploy, publish or rollback converges the fleet.

Callers decide that a run is dead (Prefect's crash and cancellation hooks,
``quayside.tasks.release_crash``; the sweep at ``quayside up``, ``quayside.stack.reconcile``;
a release taking over a dead holder's lock); this module imports no Prefect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from quayside.errors import QuaysideError
from quayside.inventory.models import Inventory
from quayside.inventory.resolve import resolve_target
from quayside.ledger import locks
from quayside.ledger.models import HostStatus, Release
from quayside.ledger.release_interruptions import HostServing, mark_interrupted
from quayside.ledger.release_queries import list_releases, running_releases
from quayside.release.fleet_summary import NO_RELEASE, UNKNOWN, fleet_counts, fleet_line
from quayside.release.served import SERVED_BY, HostFound, Reader, ServedBy

Reason = Callable[[Release], str | None]
"""Given a ``running`` release: why its run is dead (``flow run … is Crashed``), or None
while it may still be working."""


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


def _labels(engine: Engine, app: str, env: str, served_by: ServedBy | None) -> dict[str, str]:
    """What hosts point at -> the version the ledger knows it by (its oldest release of the
    kinds naming such directories)."""
    if served_by is None:
        return {}
    labels: dict[str, str] = dict(served_by.named)
    for row in reversed(list_releases(engine, app, env, limit=500)):
        if row.kind not in served_by.kinds:
            continue
        rid = (row.details or {}).get(served_by.key)
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
        found: what each host serves, as read from the hosts (its kind's reader in
            :data:`~quayside.release.served.SERVED_BY`).
        actor: who reconciles (``reconcile:crash-hook``, ``reconcile:up``, ...).
        reason: why its run is known to be dead.

    Returns:
        What was recorded, or None if the release had already finished (nothing written).

    Raises:
        LedgerError: the ledger refused the writes (after its busy retries).
    """
    app, env = release.app_name, release.env_name
    served_by = SERVED_BY.get(release.kind)
    rid = (release.details or {}).get(served_by.key) if served_by is not None else None
    nothing = served_by.nothing if served_by is not None else NO_RELEASE
    labels = _labels(engine, app, env, served_by)
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
        label = labels.get(host.current, host.current) if host.current else nothing
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
            where = f"{label} ({host.current})" if host.current else nothing
            rows.append(
                HostServing(
                    host.host,
                    HostStatus.skipped,
                    host.current,
                    f"not switched: still serves {where}",
                )
            )
            stayed.append(host.host)
    summary: dict[str, object] = {
        "result": "interrupted",
        "reason": reason,
        "hosts": len(found),
        "fleet": fleet_counts(serving),
        "switched": switched,
    }
    line = reconciled_line(release.id, this, app, env, reason, summary, switched, stayed,
                           unreadable)  # fmt: skip
    summary["line"] = line  # what the CLI following the dead run prints
    marked = mark_interrupted(engine, release.id, rows, actor=actor, reason=reason, summary=summary)
    freed = bool(
        release.flow_run_id
        and locks.release_dead(
            engine, app, env, dead_flow_run_id=release.flow_run_id, actor=actor, reason=reason
        )
    )
    if marked is None:
        return None
    return Reconciled(
        release.id, app, env, line, tuple(switched), tuple(stayed), tuple(unreadable), freed
    )


def reconciled_line(
    release_id: int,
    version: str,
    app: str,
    env: str,
    reason: str,
    summary: dict[str, object],
    switched: Sequence[str],
    not_switched: Sequence[str],
    unreadable: Sequence[str],
) -> str:
    """One line naming the hosts: ``release 7 (v2) of shop/test interrupted (flow run … is
    Cancelled): 3 of 3 hosts on v1; not switched: web-1, web-2, web-3``."""
    fleet = fleet_line(summary) or "no hosts"
    line = f"release {release_id} ({version}) of {app}/{env} interrupted ({reason}): {fleet}"
    if switched:
        line += f"; switched: {', '.join(switched)}"
    if not_switched:
        line += f"; not switched: {', '.join(not_switched)}"
    if unreadable:
        line += f"; unreadable: {', '.join(unreadable)}"
    return line


def reconcile_run(
    engine: Engine,
    inventory: Inventory,
    release: Release,
    *,
    actor: str,
    reason: str,
    read: Reader | None = None,
) -> Reconciled | None:
    """Read what the hosts of ``release`` serve (its kind's reader, or ``read``) and
    :func:`reconcile_release` it.

    A release of a kind with no host reading, whose app or environment is no longer in the
    inventory, or that names nothing it put on hosts (no release directory, no config
    version), is marked interrupted with no host rows.
    """
    hosts: list[HostFound] = []
    served_by = SERVED_BY.get(release.kind)
    if served_by is not None and (release.details or {}).get(served_by.key):
        try:
            target = resolve_target(inventory, release.app_name, release.env_name)
        except QuaysideError:
            target = None
        if target is not None:
            hosts = (read or served_by.read)(target, release)
    return reconcile_release(engine, release, hosts, actor=actor, reason=reason)


def reconcile_dead(
    engine: Engine,
    inventory: Inventory,
    why_dead: Reason,
    *,
    actor: str,
    app: str | None = None,
    env: str | None = None,
    read: Reader | None = None,
) -> list[Reconciled]:
    """Reconcile every ``running`` release (of ``app``/``env`` if given) whose run
    ``why_dead`` says is dead; releases it cannot reconcile now are left for next time.
    ``read`` replaces every kind's own host reading (tests).

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
