"""The Prefect server forgets deleted flow-run inputs (quayside.stack.secure_delete): after a
``DELETE /api/flow_runs/{id}/input/{key}`` the deleted value is in neither the SQLite file
nor its write-ahead log; without the middleware the log still holds it. Also: the server's
SQLite connections get ``secure_delete``, and only SQLite URLs name a file."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Response

from quayside.stack.secure_delete import ForgetDeletedInputs, database_file, install

SECRET = b"ANSWER-CODE-7QK2M"


def database_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    """A WAL database with one input row holding the secret; a connection stays open (as the
    server's pool keeps them), so SQLite does not fold the log in when one closes."""
    path = tmp_path / "prefect.db"
    keeper = sqlite3.connect(path)
    keeper.execute("PRAGMA journal_mode = WAL")
    keeper.execute("CREATE TABLE flow_run_input (key TEXT PRIMARY KEY, value TEXT)")
    for i in range(40):
        keeper.execute("INSERT INTO flow_run_input VALUES (?, ?)", (f"other-{i}", "x" * 200))
    keeper.commit()
    keeper.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    keeper.execute(
        "INSERT INTO flow_run_input VALUES (?, ?)", ("answer", f'{{"code": "{SECRET.decode()}"}}')
    )
    keeper.commit()
    try:
        yield path
    finally:
        keeper.close()


def prefect_like(path: Path) -> FastAPI:
    app = FastAPI()

    @app.delete("/api/flow_runs/{run_id}/input/{key}", status_code=204)
    def delete(run_id: str, key: str) -> Response:
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA secure_delete = ON")
            connection.execute("DELETE FROM flow_run_input WHERE key = ?", (key,))
        return Response(status_code=204)

    return app


def delete_answer(app: object) -> int:
    async def go() -> int:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://prefect") as client:
            response = await client.delete(f"/api/flow_runs/{uuid.uuid4()}/input/answer")
            return response.status_code

    return asyncio.run(go())


def test_a_deleted_input_leaves_no_bytes(database: Path) -> None:
    assert SECRET in database_bytes(database)
    assert delete_answer(ForgetDeletedInputs(prefect_like(database), database)) == 204
    assert SECRET not in database_bytes(database)
    assert Path(f"{database}-wal").stat().st_size == 0


def test_without_it_the_log_keeps_the_deleted_value(database: Path) -> None:
    assert delete_answer(prefect_like(database)) == 204
    assert SECRET in database_bytes(database)  # what a backup of the files would hold


def test_only_deletes_of_inputs_checkpoint(database: Path) -> None:
    app = ForgetDeletedInputs(prefect_like(database), None)  # PostgreSQL: nothing to do
    assert delete_answer(app) == 204
    assert SECRET in database_bytes(database)


def test_sqlite_connections_get_secure_delete(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    install()
    install()  # once is enough, twice does no harm
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA secure_delete")).scalar() == 1
    finally:
        engine.dispose()


def test_database_file() -> None:
    assert database_file("sqlite+aiosqlite:////srv/q/prefect/prefect.db") == Path(
        "/srv/q/prefect/prefect.db"
    )
    assert database_file("sqlite+aiosqlite:///:memory:") is None
    assert database_file("postgresql+asyncpg://u:p@db/prefect") is None
