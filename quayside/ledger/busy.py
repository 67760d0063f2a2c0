"""Ledger writes that find the database busy are tried again, for a bounded time.

A busy ledger is not a broken one: another writer holds SQLite's write lock (a long
transaction, a ``sqlite3`` shell, a backup), or a PostgreSQL row or table lock outlasts the
lock timeout, or a serializable transaction lost a conflict. Each attempt already waits the
connection's own busy timeout (:data:`quayside.ledger.db.BUSY_TIMEOUT_S`: SQLite's
``busy_timeout``, PostgreSQL's ``lock_timeout``); :func:`retry_busy` then tries the whole
transaction again with a short backoff until its budget (:func:`busy_budget_s`: default
:data:`BUSY_BUDGET_S`) has passed since the first attempt, and fails with a message that names
the ledger and, where the database can say, who holds it. A failed attempt's transaction was
rolled back, so trying again is safe.

Only functions given an Engine retry: given a Session, the transaction is the caller's, and
only the caller can run it again.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from quayside.errors import LedgerError

P = ParamSpec("P")
T = TypeVar("T")

BUSY_BUDGET_S = 30.0
"""How long a ledger write keeps trying while the database is busy (from its first attempt)."""
BUDGET_OPTION = "quayside_busy_budget_s"
"""Execution option of an Engine overriding the budget for calls given it (:func:`with_budget`)."""
BUDGET_ENV = "QUAYSIDE_LEDGER_BUSY_BUDGET_S"
"""Environment variable overriding :data:`BUSY_BUDGET_S` for every engine of the process
(seconds; a test that must outlast the budget, a site whose ledger backups hold it longer)."""
BACKOFF_S = (0.2, 0.5, 1.0, 2.0)
"""Sleeps between attempts (the last one repeats)."""

_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")
_PG_BUSY = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
}


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` (or the database error it wraps) says the database was busy."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        orig = current.orig if isinstance(current, DBAPIError) else current
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if state in _PG_BUSY:
            return True
        if type(orig).__name__ == "OperationalError" and any(
            s in str(orig).lower() for s in _SQLITE_BUSY
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_busy(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorate a ledger function whose first argument is an Engine or a Session: with an
    Engine, a busy database is tried again (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        db = args[0] if args else None
        if not isinstance(db, Engine):
            return fn(*args, **kwargs)
        budget = busy_budget_s(db)
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except (LedgerError, DBAPIError) as e:
                if not is_busy(e):
                    raise
                pause = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                attempt += 1
                if time.monotonic() - started + pause > budget:
                    raise busy_error(db, fn.__name__, time.monotonic() - started, attempt) from e
                time.sleep(pause)

    return wrapper


def busy_budget_s(engine: Engine) -> float:
    """How long ``engine``'s busy writes keep trying: its :data:`BUDGET_OPTION`, else
    :data:`BUDGET_ENV`, else :data:`BUSY_BUDGET_S` (the one place the budget is read).

    Raises:
        LedgerError: :data:`BUDGET_ENV` is set to something other than seconds >= 0.
    """
    option = engine.get_execution_options().get(BUDGET_OPTION)
    if option is not None:
        return float(option)
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return BUSY_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise LedgerError(
            f"{BUDGET_ENV}={raw!r} is not a number of seconds",
            hint=f"set it to seconds >= 0 (default {BUSY_BUDGET_S:.0f}) or unset it",
        )
    return value


def busy_error(engine: Engine, what: str, waited_s: float, attempts: int) -> LedgerError:
    """The error for a write that found the ledger busy for its whole budget."""
    holder = busy_holder(engine)
    who = f"; {holder}" if holder else ""
    return LedgerError(
        f"the ledger {engine.url.render_as_string(hide_password=True)} stayed busy: {what} "
        f"was tried {attempts} time(s) over {waited_s:.0f}s and another writer still held "
        f"it{who}",
        hint="end the long transaction holding the ledger (an open sqlite3 or psql session, "
        "a backup), then run the release again; `quayside releases APP ENV` shows what the "
        "ledger recorded",
    )


def busy_holder(engine: Engine) -> str | None:
    """Who holds the ledger, where the database can say: on PostgreSQL the oldest other
    session in a transaction holding a lock in this database; on SQLite (which does not
    record the writer) the other processes that have the database file open."""
    try:
        if engine.dialect.name == "postgresql":
            return _pg_holder(engine)
        if engine.dialect.name == "sqlite" and engine.url.database:
            return _sqlite_openers(engine.url.database)
    except Exception:  # best effort: the message stands without it
        return None
    return None


def _pg_holder(engine: Engine) -> str | None:
    query = text(
        "SELECT a.pid, a.usename, a.application_name, a.client_addr, a.xact_start, a.state "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.granted AND a.pid <> pg_backend_pid() AND a.datname = current_database() "
        "AND a.xact_start IS NOT NULL AND l.locktype IN ('relation', 'tuple', 'transactionid') "
        "AND l.mode IN ('RowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock', "
        "'ShareRowExclusiveLock', 'RowShareLock') "
        "ORDER BY a.xact_start LIMIT 1"
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    pid, user, application, address, since, state = row
    app = f" ({application})" if application else ""
    where = f" from {address}" if address else ""
    return (
        f"held by PostgreSQL session pid {pid}{app} of user {user}{where}, {state}, in a "
        f"transaction since {since.isoformat() if since else '?'}"
    )


def _sqlite_openers(database: str, limit: int = 5) -> str | None:
    path = os.path.realpath(os.path.expanduser(database))
    wanted = {path, f"{path}-wal"}
    found: list[str] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with os.scandir(f"/proc/{entry.name}/fd") as fds:
                targets = {os.readlink(fd.path) for fd in fds}
            if not targets & wanted:
                continue
            with open(f"/proc/{entry.name}/comm") as comm:
                found.append(f"pid {entry.name} ({comm.read().strip()})")
        except OSError:  # gone, or another user's
            continue
        if len(found) >= limit:
            break
    if not found:
        return None
    return "SQLite does not name the writer; processes with it open: " + ", ".join(found)


def with_budget(engine: Engine, budget_s: float) -> Engine:
    """``engine`` (same pool) whose ledger writes keep trying for ``budget_s`` seconds."""
    return engine.execution_options(**{BUDGET_OPTION: budget_s})
