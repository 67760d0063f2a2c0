"""The releases of one app environment as ``quayside releases`` lists them, read without the ORM.

Why a second read path: the listing is the one ledger read a user types to get an answer at
once, and importing SQLAlchemy with the ledger's mapped models costs about 0.4 s of CPU, most
of the command. On SQLite (the default ledger) this module reads through the standard
library's ``sqlite3``: one read-only transaction (``PRAGMA query_only``, a deferred ``BEGIN``,
as :func:`quayside.ledger.db.read_scope` opens it), never creating a database file that is
not there. Any other database (PostgreSQL) runs the same SQL through
:func:`quayside.ledger.db.read_scope`. The queries are those of
:func:`quayside.ledger.release_queries.list_releases` and
:func:`~quayside.ledger.release_queries.current_release`;
``tests/hosts/test_environment_releases.py`` checks both paths against them on both databases.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from quayside.errors import LedgerError

#: the stored values of ReleaseStatus.succeeded / .interrupted (quayside.ledger.models)
SUCCEEDED = "succeeded"
INTERRUPTED = "interrupted"
BUSY_TIMEOUT_S = 10.0  # quayside.ledger.db.BUSY_TIMEOUT_S
NOT_SET_UP_HINT = "run `quayside db upgrade` (or start the platform with `make up`)"

_COLUMNS = (
    "r.id, r.kind, r.version, r.commit_sha, r.requested_by, r.created_at, r.status, r.summary"
)
_FROM = (
    "FROM releases r JOIN environments e ON r.environment_id = e.id "
    "JOIN apps a ON e.app_id = a.id WHERE a.name = :app AND e.name = :env"
)
LIST_SQL = f"SELECT {_COLUMNS} {_FROM} ORDER BY r.id DESC LIMIT :limit"
CURRENT_SQL = f"SELECT {_COLUMNS} {_FROM} AND r.status = :succeeded ORDER BY r.id DESC LIMIT 1"


@dataclass(frozen=True)
class ListedRelease:
    """One release as the listing shows it (``kind`` and ``status`` as stored: the enum
    values of :class:`quayside.ledger.models.ReleaseKind` / ``ReleaseStatus``)."""

    id: int
    kind: str
    version: str | None
    commit_sha: str | None
    requested_by: str | None
    created_at: datetime | None
    status: str
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class Listing:
    """The newest releases (newest first) and the current one: the newest succeeded release,
    which may be older than every release listed (None when nothing succeeded)."""

    releases: list[ListedRelease]
    current: ListedRelease | None


def list_environment(url: str, app: str, env: str, limit: int = 20) -> Listing:
    """The newest ``limit`` releases of ``app``/``env`` and its current release.

    Args:
        url: the ledger's SQLAlchemy URL (``Settings.database_url``).
        app: app name.
        env: environment name.
        limit: at most this many releases.

    Returns:
        The listing; empty for an app or environment the ledger does not know.

    Raises:
        LedgerError: the ledger is not set up (no database, no tables) or refused the read.
    """
    params = {"app": app, "env": env, "limit": limit, "succeeded": SUCCEEDED}
    path = sqlite_path(url)
    if path is not None:
        return _from_sqlite(path, params)
    return _from_engine(url, params)


def sqlite_path(url: str) -> Path | None:
    """The file of a plain SQLite URL (``sqlite:///path``, ``sqlite+pysqlite:///path``);
    None for every other URL (another database, in-memory, query options, escapes), which
    the SQLAlchemy path reads."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme not in ("sqlite", "sqlite+pysqlite"):
        return None
    if not rest or rest == ":memory:" or "?" in rest or "%" in rest:
        return None
    return Path(rest).expanduser()


def _from_sqlite(path: Path, params: Mapping[str, Any]) -> Listing:
    if not path.is_file():
        raise LedgerError(
            f"the ledger database is not set up (no database file at {path})",
            hint=NOT_SET_UP_HINT,
        )
    try:  # mode=rw: never creates the file; query_only: this transaction cannot write
        connection = sqlite3.connect(
            f"file:{quote(str(path))}?mode=rw",
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
        )
    except sqlite3.Error as e:
        raise _error(e) from e
    try:
        connection.execute("PRAGMA query_only=ON")
        connection.execute("BEGIN")  # one snapshot for both queries (WAL)
        rows = connection.execute(LIST_SQL, params).fetchall()
        current = _current(rows, lambda: connection.execute(CURRENT_SQL, params).fetchone())
        connection.execute("ROLLBACK")
    except sqlite3.Error as e:
        raise _error(e) from e
    finally:
        connection.close()
    return _listing(rows, current)


def _from_engine(url: str, params: Mapping[str, Any]) -> Listing:
    from sqlalchemy import text

    from quayside.ledger.db import make_engine, read_scope

    engine = make_engine(url)
    try:
        with read_scope(engine) as session:
            rows = [tuple(r) for r in session.execute(text(LIST_SQL), params)]
            found = lambda: session.execute(text(CURRENT_SQL), params).first()  # noqa: E731
            current = _current(rows, found)
    finally:
        engine.dispose()
    return _listing(rows, current)


def _current(rows: Sequence[Sequence[Any]], query: Any) -> Sequence[Any] | None:
    """The newest succeeded row listed, else the newest older one (``query``)."""
    listed = next((r for r in rows if r[6] == SUCCEEDED), None)
    if listed is not None or not rows:
        return listed
    found = query()
    return tuple(found) if found is not None else None


def _listing(rows: Sequence[Sequence[Any]], current: Sequence[Any] | None) -> Listing:
    return Listing([_release(r) for r in rows], _release(current) if current else None)


def _release(row: Sequence[Any]) -> ListedRelease:
    id_, kind, version, commit_sha, requested_by, created_at, status, summary = row
    return ListedRelease(
        id=int(id_),
        kind=str(kind),
        version=version,
        commit_sha=commit_sha,
        requested_by=requested_by,
        created_at=_utc(created_at),
        status=str(status),
        summary=json.loads(summary) if isinstance(summary, str) else summary,
    )


def _utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as timezone-aware UTC (SQLite keeps naive UTC text, as
    :class:`quayside.ledger.models.UTCDateTime` writes it)."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _error(error: sqlite3.Error) -> LedgerError:
    """The message :func:`quayside.ledger.db.read_scope` gives for the same failure."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "no such table" in reason:
        return LedgerError(f"the ledger database is not set up ({reason})", hint=NOT_SET_UP_HINT)
    return LedgerError(f"the ledger database refused the operation: {reason}")
