"""The Prefect server as ``quayside up`` runs it.

BusyRetry: the server's retryable 503 is retried inside the server; everything else passes
through untouched. The retryable answer is produced by Prefect's own exception handler from a
real sqlite3 "database is locked" error, so a Prefect upgrade that changes it fails here. The
task-run recorder batches its writes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from prefect.server.api.server import custom_internal_exception_handler

from quayside.stack.busy_retry import (
    MAX_KEPT_BODY,
    RETRYABLE_BODY,
    BusyRetry,
    Message,
    Receive,
    Scope,
    Send,
)
from quayside.stack.processes import server_process
from quayside.stack.server import install


def locked() -> sqlalchemy.exc.OperationalError:
    """What SQLAlchemy raises when SQLite refuses a write as busy."""
    return sqlalchemy.exc.OperationalError(
        "INSERT INTO flow_run ...", {}, sqlite3.OperationalError("database is locked")
    )


def prefect_like_app(fail_times: int, seen: list[bytes]) -> FastAPI:
    """An app answering as the Prefect server does: its handler turns the first
    ``fail_times`` requests into Prefect's retryable 503 (and Starlette re-raises)."""
    app = FastAPI(exception_handlers={Exception: custom_internal_exception_handler})

    @app.post("/api/flow_runs/")
    async def create(request: Request) -> JSONResponse:
        seen.append(await request.body())
        if len(seen) <= fail_times:
            raise locked()
        return JSONResponse({"id": len(seen)}, status_code=201)

    @app.get("/api/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> Any:
            for part in (b"one,", b"two,", b"three"):
                yield part

        return StreamingResponse(parts(), media_type="text/plain")

    @app.get("/api/maintenance")
    async def maintenance() -> JSONResponse:
        return JSONResponse({"detail": "down for maintenance"}, status_code=503)

    return app


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://prefect.test")


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_prefects_retryable_answer_is_the_one_we_retry() -> None:
    seen: list[bytes] = []

    async def go() -> httpx.Response:
        async with client(prefect_like_app(1, seen)) as c:
            return await c.post("/api/flow_runs/", json={"name": "x"})

    response = run(go())
    assert response.status_code == 503
    assert response.json() == RETRYABLE_BODY


def test_a_busy_request_is_retried_with_the_same_body_and_succeeds() -> None:
    seen: list[bytes] = []
    wrapped = BusyRetry(prefect_like_app(2, seen), attempts=5, pause_s=0)

    async def go() -> httpx.Response:
        async with client(wrapped) as c:
            return await c.post("/api/flow_runs/", json={"name": "nightly", "tags": ["a"]})

    response = run(go())
    assert response.status_code == 201
    assert response.json() == {"id": 3}
    assert len(seen) == 3
    assert all(json.loads(b) == {"name": "nightly", "tags": ["a"]} for b in seen)
    assert wrapped.retried == 1


def test_after_the_last_attempt_the_503_reaches_the_client() -> None:
    seen: list[bytes] = []
    wrapped = BusyRetry(prefect_like_app(100, seen), attempts=3, pause_s=0)

    async def go() -> httpx.Response:
        async with client(wrapped) as c:
            return await c.post("/api/flow_runs/", json={})

    response = run(go())
    assert response.status_code == 503
    assert response.json() == RETRYABLE_BODY
    assert len(seen) == 3  # then the client's own backoff applies
    assert wrapped.retried == 0


def test_another_503_passes_through_at_once() -> None:
    wrapped = BusyRetry(prefect_like_app(0, []), attempts=5, pause_s=0)

    async def go() -> httpx.Response:
        async with client(wrapped) as c:
            return await c.get("/api/maintenance")

    response = run(go())
    assert response.status_code == 503
    assert response.json() == {"detail": "down for maintenance"}


def test_streamed_answers_pass_through_unchanged() -> None:
    wrapped = BusyRetry(prefect_like_app(0, []), attempts=5, pause_s=0)

    async def go() -> httpx.Response:
        async with client(wrapped) as c:
            return await c.get("/api/stream")

    response = run(go())
    assert response.status_code == 200
    assert response.content == b"one,two,three"


def test_a_large_body_is_not_kept_and_not_retried() -> None:
    seen: list[bytes] = []
    wrapped = BusyRetry(prefect_like_app(1, seen), attempts=5, pause_s=0)
    big = b"x" * (MAX_KEPT_BODY + 1)

    async def go() -> httpx.Response:
        async with client(wrapped) as c:
            return await c.post("/api/flow_runs/", content=big)

    response = run(go())
    assert response.status_code == 503
    assert seen == [big]


def test_each_attempt_gets_a_fresh_scope() -> None:
    """Routers write into the scope (Starlette's Mount sets root_path): a retry must route
    the request as the first attempt did."""
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(dict(scope))
        scope["root_path"] = scope.get("root_path", "") + "/api"
        await receive()
        status = 503 if len(scopes) == 1 else 200
        body = json.dumps(RETRYABLE_BODY if status == 503 else {"ok": True}).encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def go() -> httpx.Response:
        async with client(BusyRetry(app, attempts=3, pause_s=0)) as c:
            return await c.get("/api/flow_runs/filter")

    response = run(go())
    assert response.json() == {"ok": True}
    assert [s["root_path"] for s in scopes] == ["", ""]


def test_other_scopes_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])

    async def nothing() -> Message:
        return {"type": "lifespan.startup"}

    async def ignore(message: Message) -> None:
        return None

    run(BusyRetry(app)({"type": "lifespan"}, nothing, ignore))
    run(BusyRetry(app)({"type": "websocket", "path": "/api/events/in"}, nothing, ignore))
    assert calls == ["lifespan", "websocket"]


def test_a_client_gone_before_its_body_is_not_answered() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append("called")

    async def gone() -> Message:
        return {"type": "http.disconnect"}

    async def ignore(message: Message) -> None:
        return None

    scope: Scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"10")]}
    run(BusyRetry(app)(scope, gone, ignore))
    assert calls == []


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        BusyRetry(prefect_like_app(0, []), attempts=0)


def test_quayside_up_runs_the_wrapped_server(tmp_path: Path) -> None:
    """``quayside up`` starts the server through quayside.stack.server, whose install()
    makes Prefect's create_app return a BusyRetry (once, however often it is called)."""
    import prefect.server.api.server as prefect_server

    from quayside.settings import Settings

    settings = Settings(
        tmp_path, "sqlite://", tmp_path / "quayside.yaml", "127.0.0.1", 8400, "127.0.0.1", 4200
    )
    spec = server_process(settings)
    assert spec.argv[1:3] == ["-m", "quayside.stack.server"]
    original = prefect_server.create_app
    try:
        install()
        install()
        patched = prefect_server.create_app
        assert getattr(patched, "quayside_busy_retry", False)
        app = patched(ephemeral=True)
        assert isinstance(app, BusyRetry)
        assert not isinstance(app.app, BusyRetry)
    finally:
        prefect_server.create_app = original  # type: ignore[assignment]


def test_the_platform_server_batches_task_run_records(tmp_path: Path) -> None:
    """Prefect's task-run recorder writes in batches on the platform (fewer SQLite write
    transactions after each release); an operator's own value wins."""
    from prefect.settings.models.server.services import ServerServicesTaskRunRecorderSettings

    from quayside.settings import Settings
    from quayside.stack.processes import TASK_RUN_BATCH, TASK_RUN_FLUSH, platform_env

    settings = Settings(
        tmp_path, "sqlite://", tmp_path / "quayside.yaml", "127.0.0.1", 8400, "127.0.0.1", 4200
    )
    env = platform_env(settings, tmp_path, {})
    assert env[TASK_RUN_BATCH] == "200"
    assert env[TASK_RUN_FLUSH] == "1"
    # the names are Prefect's: its settings model reads them
    with mock.patch.dict(os.environ, {TASK_RUN_BATCH: env[TASK_RUN_BATCH], TASK_RUN_FLUSH: "1"}):
        recorder = ServerServicesTaskRunRecorderSettings()
    assert recorder.batch_size == 200
    assert recorder.flush_interval == 1
    assert platform_env(settings, tmp_path, {TASK_RUN_BATCH: "1"})[TASK_RUN_BATCH] == "1"
    assert platform_env(settings, tmp_path, {TASK_RUN_FLUSH: "2.5"})[TASK_RUN_FLUSH] == "2.5"


def test_queued_runs_are_late_after_two_minutes_not_fifteen_seconds(tmp_path: Path) -> None:
    """A release waiting for a free worker slot is queued: Prefect's late-runs service leaves
    it Scheduled for 2 minutes (its default, 15 s, set every queued run of a burst Late); the
    production stack's file says the same, and an operator's own value wins."""
    from prefect.settings.models.server.services import ServerServicesLateRunsSettings

    from quayside.settings import Settings
    from quayside.stack.processes import LATE_AFTER, platform_env
    from testbed import PROJECT_DIR

    settings = Settings(
        tmp_path, "sqlite://", tmp_path / "quayside.yaml", "127.0.0.1", 8400, "127.0.0.1", 4200
    )
    env = platform_env(settings, tmp_path, {})
    with mock.patch.dict(os.environ, {LATE_AFTER: env[LATE_AFTER]}):
        assert ServerServicesLateRunsSettings().after_seconds.total_seconds() == 120
    compose_env = (PROJECT_DIR / "infra" / "compose" / "quayside.env").read_text()
    assert f"\n{LATE_AFTER}=120\n" in compose_env
    assert platform_env(settings, tmp_path, {LATE_AFTER: "30"})[LATE_AFTER] == "30"


@pytest.mark.parametrize("value", ["0.5", "0", "-1", "nan", "inf", "soon", ""])
def test_a_flush_interval_that_would_make_prefect_spin_is_refused(
    tmp_path: Path, value: str
) -> None:
    """Prefect sleeps ``int(flush_interval)`` seconds between the recorder's flushes: below 1
    that is ``sleep(0)``, a busy loop. ``quayside up`` refuses such a value, naming it."""
    from quayside.errors import InputError
    from quayside.settings import Settings
    from quayside.stack.processes import TASK_RUN_FLUSH, platform_env

    settings = Settings(
        tmp_path, "sqlite://", tmp_path / "quayside.yaml", "127.0.0.1", 8400, "127.0.0.1", 4200
    )
    with pytest.raises(InputError) as raised:
        platform_env(settings, tmp_path, {TASK_RUN_FLUSH: value})
    assert TASK_RUN_FLUSH in str(raised.value) and "1 or more" in str(raised.value)


def test_prefect_sleeps_whole_seconds_between_task_run_flushes() -> None:
    """Why values below 1 are refused: Prefect's recorder service hands ``int()`` of the
    setting to the flush loop (if this changes upstream, the check above can go)."""
    import inspect

    from prefect.server.services import task_run_recorder

    source = inspect.getsource(task_run_recorder.TaskRunRecorder)
    assert "flush_every=int(self.service_settings().flush_interval)" in source
