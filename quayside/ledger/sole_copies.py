"""Release directories that are the only copy of their release: a git release whose payload the
artifact store could not keep (``details.restorable`` false, no artifact location) can only be
served again from its directories on the hosts, so pruning must leave them alone until the
ledger holds a stored payload for it.

The controller reads them here and hands the ids to the hosts' prune as data; the hosts never
decide from their own state which release is precious.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from quayside.ledger.db import unit_of_work
from quayside.ledger.models import App, Environment, Release, ReleaseKind
from quayside.release_id import is_release_id

#: why a run log and a release summary name such a directory as kept
SOLE_COPY_REASON = (
    "not restorable (the artifact store holds no payload for it): the hosts hold its only "
    "copy, so keep_releases does not count or prune it"
)
#: the kinds whose rows name a release directory on the hosts (``details.release_id``)
DIRECTORY_KINDS = (ReleaseKind.deploy, ReleaseKind.rollback)


@dataclass(frozen=True)
class PayloadRecord:
    """What one ledger row says about its release directory's payload."""

    #: the release directory id (``details.release_id``)
    release_id: str
    #: ``details.restorable`` as recorded: False when the store failed, None when not said
    restorable: bool | None
    #: the row names an artifact location (where the payload is kept)
    stored: bool


def sole_copy_ids(records: Iterable[PayloadRecord]) -> frozenset[str]:
    """The release ids whose directories must survive every prune: recorded as not
    restorable, and no row (the deploy itself, a later rollback to it, another deploy of the
    same directory) names a stored payload for them. A row that says nothing about
    ``restorable`` (older releases, running ones) protects nothing.

    >>> sole_copy_ids([PayloadRecord("a", False, False), PayloadRecord("b", False, False),
    ...                PayloadRecord("b", None, True), PayloadRecord("c", None, False)])
    frozenset({'a'})
    """
    rows = list(records)
    stored = {r.release_id for r in rows if r.stored}
    return frozenset(r.release_id for r in rows if r.restorable is False) - stored


def payload_records(db: Engine | Session, app: str, env: str) -> list[PayloadRecord]:
    """One record per git release row of ``app``/``env`` that names a release directory
    (two columns read, no per-host rows)."""
    query = (
        select(Release.details, Release.artifact_location)
        .join(Environment, Release.environment_id == Environment.id)
        .join(App, Environment.app_id == App.id)
        .where(App.name == app, Environment.name == env, Release.kind.in_(DIRECTORY_KINDS))
    )
    records = []
    with unit_of_work(db, read_only=True) as session:
        for details, location in session.execute(query):
            rid = (details or {}).get("release_id")
            if not (isinstance(rid, str) and is_release_id(rid)):
                continue
            flag = (details or {}).get("restorable")
            restorable = flag if isinstance(flag, bool) else None
            records.append(PayloadRecord(rid, restorable, location is not None))
    return records


def sole_copies(db: Engine | Session, app: str, env: str) -> frozenset[str]:
    """The release ids of ``app``/``env`` whose host directories are their only copy (see
    :func:`sole_copy_ids`): what a deploy or rollback passes to the hosts' prune to keep."""
    return sole_copy_ids(payload_records(db, app, env))
