"""Engines, migrations and transactions for the ledger.

Every function takes its URL, Engine or Session explicitly; nothing here keeps global state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from quayside.errors import LedgerError
from quayside.ledger.audit_chain import chain_new_events
from quayside.ledger.models import add_postgresql_options, refuse_bulk_audit_changes
from quayside.settings import load_settings

if TYPE_CHECKING:  # alembic is imported by the functions that migrate (a CLI start-up cost)
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_HINT = "run `quayside db upgrade`"
BUSY_TIMEOUT_S = 10.0
"""How long one ledger statement waits for another writer's lock (SQLite's busy timeout,
PostgreSQL's lock_timeout) before the attempt fails as busy; :mod:`quayside.ledger.busy`
then tries the transaction again within its budget."""
SQLITE_BUSY_TIMEOUT_MS = int(BUSY_TIMEOUT_S * 1000)
READ_ONLY = "quayside_read_only"
"""Execution option of the engine :func:`read_scope` binds: its transactions only read."""


class LedgerSession(Session):
    """The session :func:`session_scope` opens; refuses bulk changes to the audit log and
    chains the audit events it writes (:mod:`quayside.ledger.audit_chain`)."""


event.listen(LedgerSession, "do_orm_execute", refuse_bulk_audit_changes)
event.listen(LedgerSession, "before_flush", chain_new_events)


def default_url() -> str:
    """The ledger URL from the settings (``QUAYSIDE_DATABASE_URL``, else SQLite in
    ``QUAYSIDE_HOME``).

    Returns:
        A SQLAlchemy URL string.
    """
    return load_settings().database_url


def make_engine(
    url: str | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S, **kwargs: Any
) -> Engine:
    """Create an engine for the ledger.

    For SQLite the parent directory is created, and every connection gets WAL journaling,
    enforced foreign keys and a busy timeout; transactions start with ``BEGIN IMMEDIATE`` so
    that two writers queue on the busy timeout instead of failing when one upgrades a read
    lock (SQLite's own transaction handling in the driver is turned off for this). The
    transactions of :func:`read_scope` start with a plain ``BEGIN`` under ``PRAGMA
    query_only`` instead (SQLite), or ``SET TRANSACTION READ ONLY`` (PostgreSQL): they never
    wait for, or hold, the write lock. A statement waits at most ``busy_timeout_s`` for
    another writer's lock (SQLite ``busy_timeout``, PostgreSQL ``lock_timeout``).

    Args:
        url: SQLAlchemy URL; default :func:`default_url`.
        busy_timeout_s: how long one statement waits for a lock another writer holds.
        **kwargs: passed to :func:`sqlalchemy.create_engine`.

    Returns:
        A new Engine; the caller disposes of it.

    Raises:
        LedgerError: the URL cannot be parsed or its driver is not installed.
    """
    url = url or default_url()
    try:
        parsed = make_url(url)
    except Exception as e:  # ArgumentError, ValueError
        raise LedgerError(f"invalid ledger database URL {url!r}: {e}") from e
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # private, as `quayside up` wants its data directory (quayside.stack.data_dir)
            Path(parsed.database).expanduser().parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", busy_timeout_s)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    try:
        engine = create_engine(parsed, **kwargs)
    except Exception as e:  # NoSuchModuleError, ArgumentError
        raise LedgerError(f"cannot use ledger database URL {parsed!r}: {e}") from e
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_s)
    else:
        _configure_server(engine, busy_timeout_s)
    return engine


def _read_only(connection: Any) -> bool:
    return bool(connection.get_execution_options().get(READ_ONLY, False))


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see below
        cursor = dbapi_connection.cursor()
        try:
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = _read_only(connection)
        info = connection.connection.info  # lives as long as the DBAPI connection
        if info.get(READ_ONLY, False) != read_only:
            connection.exec_driver_sql(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
            info[READ_ONLY] = read_only
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _configure_server(engine: Engine, busy_timeout_s: float) -> None:
    if engine.dialect.name == "postgresql":
        add_postgresql_options()

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # a row or table lock another session holds fails the statement after this long
            # (SQLSTATE 55P03) instead of waiting forever; quayside.ledger.busy retries it
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"SET lock_timeout = {int(busy_timeout_s * 1000)}")
            finally:
                cursor.close()
            dbapi_connection.commit()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if _read_only(connection):
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back everything if it raises.

    Objects stay readable after the commit (``expire_on_commit=False``).

    Args:
        engine: the ledger engine.

    Yields:
        A Session inside a transaction.

    Raises:
        LedgerError: the database refused a statement (constraint, trigger, lost connection);
            the original error is chained. Other exceptions propagate unchanged.
    """
    session = LedgerSession(engine, expire_on_commit=False)
    try:
        with session.begin():
            yield session
    except (DBAPIError, StatementError) as e:
        raise _ledger_error(e) from e
    finally:
        session.close()


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """One read-only transaction, rolled back when the block ends.

    On SQLite it starts with a deferred ``BEGIN``: it reads a consistent snapshot (WAL) while
    a writer works, and never takes or waits for the write lock that ``BEGIN IMMEDIATE``
    takes; the database refuses writes in it (``PRAGMA query_only``). On PostgreSQL it is a
    ``READ ONLY`` transaction.

    Args:
        engine: the ledger engine.

    Yields:
        A Session inside a read-only transaction; objects stay readable after it ends.

    Raises:
        LedgerError: the database refused a statement (a write among them, for instance).
    """
    session = LedgerSession(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)
    try:
        session.begin()
        yield session
    except (DBAPIError, StatementError) as e:
        raise _ledger_error(e) from e
    finally:
        session.close()  # ends the transaction with a rollback; loaded objects stay readable


@contextmanager
def unit_of_work(db: Engine | Session, *, read_only: bool = False) -> Iterator[Session]:
    """The transaction a ledger function works in.

    Given an Engine, a new transaction that commits at the end (:func:`session_scope`). Given
    a Session, that session: the caller's transaction, which the caller commits or rolls back,
    so several ledger calls can form one transaction. Changes are flushed before returning so
    database errors surface inside the function that caused them.

    Args:
        db: an Engine or a Session.
        read_only: given an Engine, open a :func:`read_scope` instead (for functions that
            only read: no write lock on SQLite). Ignored with a Session.

    Yields:
        The Session to use.

    Raises:
        LedgerError: the database refused a statement.
    """
    if isinstance(db, Session):
        try:
            yield db
            db.flush()
        except (DBAPIError, StatementError) as e:
            raise _ledger_error(e) from e
        return
    with read_scope(db) if read_only else session_scope(db) as session:
        yield session


def _ledger_error(error: DBAPIError | StatementError) -> LedgerError:
    reason = _reason(error)
    missing_table = "no such table" in reason  # SQLite
    missing_relation = "relation" in reason and "does not exist" in reason  # PostgreSQL
    if missing_table or missing_relation:
        return LedgerError(
            f"the ledger database is not set up ({reason})",
            hint="run `quayside db upgrade` (or start the platform with `make up`)",
        )
    return LedgerError(f"the ledger database refused the operation: {reason}")


def _reason(error: DBAPIError | StatementError) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for the migrations shipped in this package (no ini file).

    Args:
        url: database URL handed to ``env.py`` through ``config.attributes``.

    Returns:
        The Alembic Config.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.attributes["url"] = url
    return config


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the ledger schema to ``revision`` (default the latest).

    Args:
        url: database URL; default :func:`default_url`.
        revision: Alembic revision to upgrade to.

    Raises:
        LedgerError: the migration failed; the database is left at its previous revision
            where the backend has transactional DDL (PostgreSQL, SQLite).
    """
    from alembic import command

    _run_alembic(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Downgrade the ledger schema to ``revision`` (default: empty database).

    Args:
        url: database URL; default :func:`default_url`.
        revision: Alembic revision to downgrade to.

    Raises:
        LedgerError: the downgrade failed.
    """
    from alembic import command

    _run_alembic(url, lambda config: command.downgrade(config, revision))


def _run_alembic(url: str | None, action: Any) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            action(config)
    except (DBAPIError, StatementError) as e:
        raise LedgerError(f"ledger migration failed: {_reason(e)}") from e
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The latest revision among the shipped migrations.

    Returns:
        The revision id.
    """
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database).

    Args:
        engine: the ledger engine.

    Returns:
        The revision id or None.
    """
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Make sure the database is at the latest migration before using it.

    Args:
        engine: the ledger engine.

    Raises:
        LedgerError: the database is unreachable, empty, behind or ahead of this code; the
            hint says to run ``quayside db upgrade``.
    """
    try:
        current = current_revision(engine)
    except DBAPIError as e:
        raise LedgerError(
            f"cannot read the ledger schema version at {engine.url!r}: {_reason(e)}",
            hint="check QUAYSIDE_DATABASE_URL and that the database server is up",
        ) from e
    head = head_revision()
    if current == head:
        return
    if current is None:
        message = f"the ledger database at {engine.url!r} has no schema"
    else:
        message = (
            f"the ledger database at {engine.url!r} is at revision {current}, "
            f"this Quayside expects {head}"
        )
    raise LedgerError(message, hint=UPGRADE_HINT)
