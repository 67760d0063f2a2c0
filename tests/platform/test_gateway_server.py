"""The gateway served by uvicorn on a free loopback port (a thread of this process), backed by
its own ledger and inventory and by the session's real Prefect platform; plus tests of what
every route shares: health, OpenAPI, body limit, error bodies and the access log."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from quayside.deployments.catalogue import CATALOGUE
from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig, origin_of
from quayside.settings import Settings
from testbed import FIXTURES_DIR
from testbed.platform import Platform, free_port, settled_before_stop

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

FIXTURES = FIXTURES_DIR
GITLAB_SECRET = json.loads((FIXTURES / "gitlab" / "tag_push.json").read_text())["headers"][
    "X-Gitlab-Token"
]
DINGTALK = json.loads((FIXTURES / "dingtalk" / "outgoing_text.json").read_text(encoding="utf-8"))
DEPLOY = "git-deploy" if any(s.name == "git-deploy" for s in CATALOGUE) else "hello-release"
"""What git hooks and chat deploys start: git-deploy once it is in the catalogue."""


class Receiver:
    """A local stand-in for DingTalk's sessionWebhook: records JSON POSTs, answers errcode 0."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                outer.messages.append(json.loads(self.rfile.read(length)))
                body = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Gateway:
    """A running test gateway and the users/tokens it knows."""

    url: str
    home: Path
    database_url: str
    receiver: Receiver
    tokens: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)

    def engine(self) -> Any:
        from quayside.ledger.db import make_engine

        return make_engine(self.database_url)

    def post(self, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = httpx.post(self.url + path, headers=headers, timeout=60, **kwargs)
        run_id = _run_id(response)
        if run_id and run_id not in self.runs:
            self.runs.append(run_id)
        return response


def _run_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    value = data.get("flow_run_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _setup_ledger(database_url: str) -> dict[str, str]:
    from quayside.auth import service
    from quayside.ledger.db import make_engine, migrate
    from quayside.ledger.models import utcnow

    migrate(database_url)
    engine = make_engine(database_url)
    try:
        service.create_user(engine, "dev", dingtalk_id=DINGTALK["body"]["senderStaffId"])
        service.create_user(engine, "rep", dingtalk_id="reporter-staff-id")
        service.create_user(engine, "boss")
        service.create_user(engine, "githook")
        service.grant_role(engine, "dev", "DEVELOPER", space="team")
        service.grant_role(engine, "rep", "REPORTER", space="team")
        service.grant_role(engine, "boss", "MASTER", space="team")
        service.grant_role(engine, "githook", "DEVELOPER", space="team")
        tokens = {
            "dev": service.create_token(engine, "dev"),
            "rep": service.create_token(engine, "rep"),
            "boss": service.create_token(engine, "boss"),
            "githook": service.create_token(engine, "githook"),
            "expired": service.create_token(
                engine, "dev", expires_in=timedelta(hours=1), now=utcnow() - timedelta(hours=2)
            ),
        }
        revoked = service.create_token(engine, "dev")
        service.revoke_token(engine, revoked)
        tokens["revoked"] = revoked
        return tokens
    finally:
        engine.dispose()


def wait_final(api_url: str, run_ids: list[str], timeout: float = 90) -> None:
    """Wait until the runs the tests started are final (so they do not overlap later tests);
    delete runs still scheduled for later."""
    from quayside.runs import prefect_client

    if not run_ids:
        return

    async def go() -> None:
        deadline = time.monotonic() + timeout
        async with prefect_client(api_url) as client:
            for run_id in run_ids:
                while time.monotonic() < deadline:
                    run = await client.read_flow_run(run_id)  # type: ignore[arg-type]
                    state = run.state.type.value if run.state else "PENDING"
                    if (
                        state == "SCHEDULED"
                        and run.expected_start_time
                        and (run.expected_start_time.timestamp() > time.time() + 60)
                    ):
                        await client.delete_flow_run(run.id)
                        break
                    if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "PAUSED"}:
                        break
                    await asyncio.sleep(0.5)

    asyncio.run(go())


@contextmanager
def running_gateway(platform: Platform, home: Path, inventory_text: str) -> Iterator[Gateway]:
    """A gateway on a free port reading ``inventory_text`` (``{home}`` replaced by its data
    directory), with users dev (DEVELOPER), rep (REPORTER), boss (MASTER) and githook
    (DEVELOPER) in space ``team``, plus an expired and a revoked token of dev; backed by the
    session's Prefect platform. The runs its tests started are waited for when it stops."""
    inventory = home / "quayside.yaml"
    inventory.write_text(inventory_text.replace("{home}", str(home)))
    database_url = f"sqlite:///{home / 'ledger.db'}"
    tokens = _setup_ledger(database_url)
    receiver = Receiver()
    port = free_port()
    settings = Settings(
        home=home,
        database_url=database_url,
        inventory_path=inventory,
        gateway_host="127.0.0.1",
        gateway_port=port,
        prefect_host="127.0.0.1",
        prefect_port=platform.prefect_port,
    )
    config = GatewayConfig(
        max_body_bytes=64 * 1024,
        dingtalk_app_secret=DINGTALK["app_secret"],
        dingtalk_reply_origins=(origin_of(receiver.url),),
        git_deploy_deployment=DEPLOY,
        # every test here calls from 127.0.0.1: their refusals must not add up to a 429
        # (the throttle itself is tested in test_gateway_hardening)
        auth_failures=10_000,
    )
    os.environ["QS_TEST_GITLAB_SECRET"] = GITLAB_SECRET
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, config),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "gateway did not start"
    gw = Gateway(url=url, home=home, database_url=database_url, receiver=receiver, tokens=tokens)

    def settle() -> None:
        wait_final(platform.api_url, gw.runs)
        gw.runs.clear()

    try:
        with settled_before_stop(settle):  # the platform may stop before this teardown
            yield gw
    finally:
        try:
            settle()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            receiver.close()


@pytest.fixture(scope="session", name="gateway")
def gateway_fixture(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """The gateway of tests/fixtures/gateway/inventory.yaml (see :func:`running_gateway`)."""
    home = tmp_path_factory.mktemp("gateway")
    text = (FIXTURES / "gateway" / "inventory.yaml").read_text(encoding="utf-8")
    with running_gateway(platform, home, text) as gw:
        yield gw


def test_health_and_openapi(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    paths = httpx.get(gateway.url + "/openapi.json").json()["paths"]
    for path in (
        "/api/tasks",
        "/hooks/gitlab",
        "/hooks/git",
        "/chatops/dingtalk",
        "/api/approvals/{run_id}",
    ):
        assert path in paths
    assert httpx.get(gateway.url + "/docs").status_code == 200


@pytest.mark.parametrize("path", ["/api/tasks", "/hooks/gitlab", "/hooks/git", "/chatops/dingtalk"])
def test_oversized_body_is_413_everywhere(gateway: Gateway, path: str) -> None:
    body = b'{"a": "' + b"x" * (70 * 1024) + b'"}'
    response = gateway.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "too large" in response.json()["error"]


def test_oversized_chunked_body_without_length_is_413(gateway: Gateway) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    response = httpx.post(
        gateway.url + "/api/tasks",
        content=chunks(),
        headers={
            "content-type": "application/json",
            "Authorization": "Bearer " + gateway.tokens["dev"],
        },
    )
    assert response.status_code == 413


def test_errors_are_json_with_request_id_and_no_traceback(gateway: Gateway) -> None:
    response = gateway.post(
        "/api/tasks",
        token=gateway.tokens["dev"],
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    data = response.json()
    assert data["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert "not valid JSON" in data["error"]
