"""Alembic environment for the ledger.

The database comes from the caller, never from an ini file: either an open connection in
``config.attributes["connection"]`` (what :func:`quayside.ledger.db.migrate` passes) or a URL
in ``config.attributes["url"]`` / the ``sqlalchemy.url`` main option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from quayside.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database for the ledger migrations: pass a connection or a URL in "
            "config.attributes (see quayside.ledger.db.migrate)"
        )
    return str(url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from quayside.ledger.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
