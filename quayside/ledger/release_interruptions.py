"""Ending a release its run left unfinished: ``interrupted``, with what each host serves
(what :mod:`quayside.release.reconcile` read from the hosts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.ledger import audit
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import (
    TERMINAL_RELEASE_STATUSES,
    HostStatus,
    Release,
    ReleaseHost,
    ReleaseStatus,
    utcnow,
)
from quayside.ledger.release_queries import load_release


@dataclass(frozen=True)
class HostServing:
    """What one host served when a dead run's release was reconciled, for
    :func:`mark_interrupted`.

    Attributes:
        host: host name.
        status: ``switched`` (its ``current`` is this release), ``skipped`` (it still serves
            another one) or ``failed`` (its facts could not be read).
        serves: the release directory its ``current`` pointed at (None: unknown or none).
        message: what was found, for people.
    """

    host: str
    status: HostStatus
    serves: str | None
    message: str


@retry_busy
def mark_interrupted(
    db: Engine | Session,
    release_id: int,
    hosts: Sequence[HostServing],
    *,
    actor: str,
    reason: str,
    summary: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Release | None:
    """End a release its run left unfinished as ``interrupted``, with one row per host saying
    what the host serves (its own facts), in one transaction with one audit event.

    A release that has already finished is left as it is (a crash hook and the sweep at
    ``quayside up`` may both get there): nothing is written and None is returned.

    Args:
        db: Engine or Session.
        release_id: the release.
        hosts: what each host serves now.
        actor: who reconciled it (``reconcile:crash-hook``, ``reconcile:up``, ...).
        reason: why the run is known to be dead (its Prefect state, ...).
        summary: replaces the release's summary (what ``quayside releases`` shows).
        at: the time (default now).

    Returns:
        The interrupted Release, or None if it had already finished.

    Raises:
        NotFoundError: no such release.
        LedgerError: the database refused the change.
    """
    when = at or utcnow()
    with unit_of_work(db) as session:
        release = load_release(session, release_id, for_update=True)
        if release.status in TERMINAL_RELEASE_STATUSES:
            return None
        existing = {row.host: row for row in release.hosts}
        for found in hosts:
            row = existing.get(found.host)
            if row is None:
                row = ReleaseHost(release_id=release.id, host=found.host, status=found.status)
                session.add(row)
                release.hosts.append(row)
            row.status = found.status
            row.step = "reconcile"
            row.message = found.message
            row.serves = found.serves
            row.finished_at = row.finished_at or when
        release.status = ReleaseStatus.interrupted
        release.finished_at = when
        if summary is not None:
            release.summary = summary
        release.details = {**(release.details or {}), "interrupted": reason}
        audit.record(
            session,
            actor,
            "release.interrupted",
            "release",
            release.id,
            {
                "reason": reason,
                "flow_run_id": release.flow_run_id,
                "hosts": {h.host: {"status": h.status.value, "serves": h.serves} for h in hosts},
            },
        )
        return release
