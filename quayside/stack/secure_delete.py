"""Prefect's SQLite database forgets deleted flow-run inputs (the approval form's answers).

The Prefect UI's approval form sends a single-use approval code through Prefect's
``flow_run_input`` table; the approval gate reads and deletes it within a second. A deleted
SQLite row is not gone: its bytes stay in the page's free space, and the write-ahead log keeps
the page as it was until the log is overwritten - so a copy of ``prefect.db`` and
``prefect.db-wal`` would still hold every answer. Two measures in the Prefect server process
(installed by :mod:`quayside.stack.server`):

- every SQLite connection the server opens runs ``PRAGMA secure_delete = ON`` (deleted content
  is overwritten with zeros; Debian's SQLite does this by default, other builds do not);
- after the API deleted a flow-run input (``DELETE /api/flow_runs/{id}/input/{key}``), a
  ``wal_checkpoint(TRUNCATE)`` copies the zeroed pages into the database file and empties the
  log (retried briefly while readers hold it).

PostgreSQL keeps dead rows until VACUUM: on PostgreSQL, vacuum ``flow_run_input`` regularly
(``autovacuum`` does so by default).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INPUT_PATH = re.compile(r"/api/flow_runs/[0-9a-fA-F-]{36}/input/[^/]+")
CHECKPOINT_TRIES = 20
CHECKPOINT_PAUSE_S = 0.1


def install() -> None:
    """Turn on ``secure_delete`` for every SQLite connection SQLAlchemy opens in this
    process (Prefect's server engine is created later, so it gets it too)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _secure_delete):
        event.listen(Engine, "connect", _secure_delete)


def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
    if "sqlite" not in type(dbapi_connection).__module__ and not isinstance(
        dbapi_connection, sqlite3.Connection
    ):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA secure_delete = ON;")
    finally:
        cursor.close()


def database_file(connection_url: str) -> Path | None:
    """The SQLite file behind a SQLAlchemy URL (None for other databases and in-memory)."""
    from sqlalchemy.engine import make_url

    url = make_url(connection_url)
    if not url.get_backend_name().startswith("sqlite"):
        return None
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return None
    return Path(url.database)


def truncate_wal(path: Path) -> bool:
    """Checkpoint the write-ahead log of ``path`` into the database and empty it.

    Returns:
        True once a TRUNCATE checkpoint completed (False if readers kept it busy throughout).
    """
    for _ in range(CHECKPOINT_TRIES):
        with sqlite3.connect(path, timeout=1) as connection:
            connection.execute("PRAGMA secure_delete = ON")
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return True
        time.sleep(CHECKPOINT_PAUSE_S)
    return False


class ForgetDeletedInputs:
    """ASGI middleware: after a successful ``DELETE`` of a flow-run input, empty the SQLite
    write-ahead log of ``database`` (the response is sent first; the checkpoint follows).

    Args:
        app: the Prefect server's ASGI app.
        database: its SQLite file, or None (PostgreSQL): then this passes everything through.
    """

    def __init__(self, app: ASGIApp, database: Path | None) -> None:
        self.app = app
        self.database = database
        self._lock = asyncio.Lock()

    def __getattr__(self, name: str) -> Any:
        if name == "app":
            raise AttributeError(name)
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.database is None
            or scope.get("type") != "http"
            or scope.get("method") != "DELETE"
            or not INPUT_PATH.fullmatch(str(scope.get("path", "")))
        ):
            await self.app(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message.get("status", 0))
            await send(message)

        await self.app(scope, receive, watch)
        if 200 <= status < 300:
            async with self._lock:  # one checkpoint at a time
                await asyncio.to_thread(truncate_wal, self.database)
