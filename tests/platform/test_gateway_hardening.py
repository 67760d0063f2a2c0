"""The gateway process under attack (security review findings 9, 10 and 15), started as
``quayside up`` starts it: credentials are checked before a body is parsed and every bad body
is a 4xx with one line in the log; failed authentications are throttled per client address
and per token id (429 with Retry-After); slow headers and slow bodies lose their connection
within the deadline; no query string or header reaches the process's log.

Each test talks from its own loopback source address (127.0.0.0/8 is all loopback), so the
throttle's per-address state of one test never touches another.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from testbed import FIXTURES_DIR, dingtalk
from testbed.gateway_process import GatewayProcess

FIXTURES = FIXTURES_DIR
GITLAB_SECRET = "hardening-webhook-secret"
DINGTALK_SECRET = "hardening-dingtalk-secret"
DEADLINE_S = 3
"""The header and body deadline the test gateway runs with (the default is 10 s)."""
AUTH_FAILURES = 20
DEEP = b"[" * 30_000 + b"]" * 30_000
"""30,000 nested JSON arrays: 60,000 bytes, under the 64 KiB body limit."""


def setup_ledger(database_url: str) -> dict[str, str]:
    from quayside.auth import service
    from quayside.ledger.db import make_engine, migrate

    migrate(database_url)
    engine = make_engine(database_url)
    try:
        service.create_user(engine, "dev")
        service.grant_role(engine, "dev", "DEVELOPER", space="team")
        service.create_user(engine, "victim")
        service.grant_role(engine, "victim", "DEVELOPER", space="team")
        return {
            "dev": service.create_token(engine, "dev"),
            "victim": service.create_token(engine, "victim"),
        }
    finally:
        engine.dispose()


@pytest.fixture(scope="module", name="gateway")
def gateway_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    home = tmp_path_factory.mktemp("hardening")
    home.chmod(0o700)
    inventory = home / "quayside.yaml"
    inventory.write_text((FIXTURES / "gateway" / "inventory.yaml").read_text())
    process = GatewayProcess(
        home,
        inventory,
        {
            "QS_TEST_GITLAB_SECRET": GITLAB_SECRET,
            "QUAYSIDE_DINGTALK_APP_SECRET": DINGTALK_SECRET,
            "QUAYSIDE_GATEWAY_HEADER_TIMEOUT": str(DEADLINE_S),
            "QUAYSIDE_GATEWAY_BODY_TIMEOUT": str(DEADLINE_S),
            "QUAYSIDE_GATEWAY_AUTH_FAILURES": str(AUTH_FAILURES),
        },
    )
    tokens = setup_ledger(process.settings.database_url)
    process.tokens = tokens  # type: ignore[attr-defined]
    process.start()
    try:
        yield process
    finally:
        process.stop()


def tokens_of(gateway: GatewayProcess) -> dict[str, str]:
    tokens: dict[str, str] = gateway.tokens  # type: ignore[attr-defined]
    return tokens


def client(gateway: GatewayProcess, source: str) -> httpx.Client:
    """An HTTP client whose connections come from loopback address ``source``."""
    return httpx.Client(
        base_url=gateway.url,
        transport=httpx.HTTPTransport(local_address=source),
        timeout=30,
    )


def signed(offset_ms: int = 0) -> dict[str, str]:
    """DingTalk's timestamp and sign headers (a distinct timestamp per call: no replay)."""
    timestamp = str(int(time.time() * 1000) + offset_ms)
    return {"timestamp": timestamp, "sign": dingtalk.sign(timestamp, DINGTALK_SECRET)}


JSON = {"content-type": "application/json"}
GITLAB = {**JSON, "X-Gitlab-Event": "Tag Push Hook"}


def attempts(gateway: GatewayProcess, credentials: bool) -> list[tuple[str, dict[str, str]]]:
    """(path, headers) of every gateway route that takes a body, with or without valid
    credentials."""
    bearer = {"Authorization": f"Bearer {tokens_of(gateway)['dev']}"} if credentials else {}
    hook = {"X-Gitlab-Token": GITLAB_SECRET} if credentials else {}
    return [
        ("/hooks/gitlab?app=web", {**GITLAB, **hook}),
        ("/hooks/gitlab", {**GITLAB, **hook}),
        ("/api/tasks", {**JSON, **bearer}),
        ("/hooks/git", {**JSON, **bearer}),
        ("/api/approvals/0b9a2d6e-5d3c-4a8e-9d61-1c0f6f1f3a11", {**JSON, **bearer}),
        ("/chatops/dingtalk", {**JSON, **(signed(len(JSON)) if credentials else {})}),
    ]


def assert_no_traceback(gateway: GatewayProcess) -> None:
    log = gateway.log_text()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


def test_deep_json_without_credentials_is_401_unparsed(gateway: GatewayProcess) -> None:
    with client(gateway, "127.0.0.11") as http:
        for path, headers in attempts(gateway, credentials=False):
            response = http.post(path, content=DEEP, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["hint"], path
        wrong = {**JSON, "Authorization": "Bearer qs_0123456789ab_" + "0" * 64}
        assert http.post("/api/tasks", content=DEEP, headers=wrong).status_code == 401
        wrong_hook = {**GITLAB, "X-Gitlab-Token": "not-the-secret"}
        assert http.post("/hooks/gitlab", content=DEEP, headers=wrong_hook).status_code == 401
    assert_no_traceback(gateway)


def test_deep_json_with_credentials_is_400_with_one_line(gateway: GatewayProcess) -> None:
    with client(gateway, "127.0.0.12") as http:
        for index, (path, headers) in enumerate(attempts(gateway, credentials=True)):
            if path == "/chatops/dingtalk":
                headers = {**headers, **signed(index)}
            response = http.post(path, content=DEEP, headers=headers)
            assert response.status_code == 400, (path, response.text)
            body = response.json()
            assert body["error"] == "the body is not acceptable JSON: nested too deeply", path
            assert body["hint"].startswith("send "), path
    assert_no_traceback(gateway)


@pytest.mark.parametrize(
    "body", [b"{not json", b"\xff\xfe{}", b'{"a": "\xc3"}', b"[1, 2]", b"", b"null"]
)
def test_every_bad_body_is_a_4xx(gateway: GatewayProcess, body: bytes) -> None:
    with client(gateway, "127.0.0.13") as http:
        for index, (path, headers) in enumerate(attempts(gateway, credentials=True)):
            if path == "/chatops/dingtalk":
                headers = {**headers, **signed(1000 + index)}
            response = http.post(path, content=body, headers=headers)
            assert 400 <= response.status_code < 500, (path, body, response.text)
            assert response.json()["error"], (path, body)
    assert_no_traceback(gateway)


def test_failed_authentications_are_throttled_per_address(gateway: GatewayProcess) -> None:
    statuses: list[int] = []
    retry_after: set[int] = set()
    started = time.monotonic()
    with client(gateway, "127.0.0.21") as http:
        for attempt in range(300):
            token = f"qs_{attempt:012x}_" + "f" * 64
            spoofed = f"10.9.{attempt // 256}.{attempt % 256}"  # no proxy is trusted: ignored
            response = http.post(
                "/api/tasks",
                headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": spoofed},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.add(int(response.headers["retry-after"]))
                refusal = response.json()
        rate = 300 / (time.monotonic() - started)
        assert statuses[:AUTH_FAILURES] == [401] * AUTH_FAILURES
        assert statuses[AUTH_FAILURES:] == [429] * (300 - AUTH_FAILURES), f"{rate:.0f} req/s"
        assert retry_after and all(1 <= s <= 60 for s in retry_after)
        assert refusal["error"].startswith(
            "too many failed authentications from address 127.0.0.21: try again in"
        )
        assert "check the token" in refusal["hint"]
        # refused unchecked: a valid token from this address waits too; liveness still answers
        valid = {"Authorization": f"Bearer {tokens_of(gateway)['dev']}"}
        assert http.post("/api/tasks", headers=valid).status_code == 429
        assert http.get("/health").status_code == 200
    with client(gateway, "127.0.0.22") as other:
        answer = other.post("/api/approvals/x", json={}, headers=valid)
        assert answer.status_code == 422  # checked (and the body refused), not throttled


def test_uvicorn_settings() -> None:
    from quayside.gateway.app import create_app
    from quayside.gateway.config import GatewayConfig
    from quayside.gateway.server import uvicorn_config
    from quayside.settings import load_settings

    settings = load_settings()
    config = GatewayConfig()
    served = uvicorn_config(create_app(settings, config), settings, config)
    assert served.access_log is False
    assert served.proxy_headers is False
    assert served.timeout_keep_alive == 5
    assert served.h11_max_incomplete_event_size == 16 * 1024
    assert isinstance(served.http, type) and served.http.__name__ == "HeaderDeadlineProtocol"
    proxied = GatewayConfig(trusted_proxies=("10.0.0.5",))
    behind = uvicorn_config(create_app(settings, proxied), settings, proxied)
    assert behind.proxy_headers is True and behind.forwarded_allow_ips == ["10.0.0.5"]


def test_failed_authentications_are_throttled_per_token_id(gateway: GatewayProcess) -> None:
    token = tokens_of(gateway)["victim"]
    guess = token[: -len("0" * 64)] + "0" * 64  # the token id with a wrong secret
    statuses: list[int] = []
    for n in range(AUTH_FAILURES + 2):
        with client(gateway, f"127.0.1.{n + 1}") as http:  # a new address every time
            response = http.post("/api/tasks", headers={"Authorization": f"Bearer {guess}"})
            statuses.append(response.status_code)
    assert statuses == [401] * AUTH_FAILURES + [429, 429]
    token_id = token.split("_")[1]
    assert f"for token qs_{token_id}_…" in response.json()["error"]


@dataclass(frozen=True)
class Exchange:
    """What a slow client saw: the server's answer, whether the server closed the connection
    (rather than the client giving up), and how many bytes of the trickle had gone out."""

    answer: bytes
    closed_by_server: bool
    trickled: int


def raw_exchange(
    gateway: GatewayProcess, source: str, head: bytes, trickle: bytes, limit_s: float
) -> Exchange:
    """Send ``head`` then ``trickle`` one byte a second, then wait up to ``limit_s`` in all for
    the server to close the connection."""
    sock = socket.create_connection(gateway.address, timeout=limit_s, source_address=(source, 0))
    started = time.monotonic()
    received = b""
    sent = 0
    try:
        sock.sendall(head)
        sock.settimeout(1.0)
        for byte in trickle:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                chunk = None
            if chunk == b"":
                return Exchange(received, True, sent)
            if chunk:
                received += chunk
            try:
                sock.sendall(bytes([byte]))
                sent += 1
            except OSError:  # reset by the server
                return Exchange(received, True, sent)
            if time.monotonic() - started > limit_s:
                return Exchange(received, False, sent)
        sock.settimeout(max(0.1, limit_s - (time.monotonic() - started)))
        while chunk := sock.recv(65536):
            received += chunk
        return Exchange(received, True, sent)
    except TimeoutError:
        return Exchange(received, False, sent)
    except OSError:
        return Exchange(received, True, sent)
    finally:
        sock.close()


def test_slow_body_gets_408_and_loses_its_connection(gateway: GatewayProcess) -> None:
    token = tokens_of(gateway)["dev"]
    head = (
        b"POST /api/tasks HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 200\r\n\r\n{"
    )
    seen = raw_exchange(gateway, "127.0.0.31", head, b'"' * 60, limit_s=40)
    assert seen.answer.startswith(b"HTTP/1.1 408 "), seen.answer[:200]
    assert b"connection: close" in seen.answer.lower()
    assert b"did not arrive within 3 s" in seen.answer
    # the server ended it: the client had more to trickle and had not given up
    assert seen.closed_by_server and seen.trickled < 60, seen


def test_slow_body_without_token_is_refused_at_once(gateway: GatewayProcess) -> None:
    head = b"POST /api/tasks HTTP/1.1\r\nHost: gateway\r\nContent-Length: 200\r\n\r\n{"
    seen = raw_exchange(gateway, "127.0.0.32", head, b'"' * 60, limit_s=40)
    assert seen.answer.startswith(b"HTTP/1.1 401 "), seen.answer[:200]
    # refused from the head alone: the answer came before the body's deadline could
    assert seen.closed_by_server and seen.trickled < DEADLINE_S, seen


def test_slow_headers_lose_their_connection(gateway: GatewayProcess) -> None:
    head = b"POST /api/tasks HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
    seen = raw_exchange(gateway, "127.0.0.33", head, b"a" * 60, limit_s=40)
    assert seen.answer.startswith(b"HTTP/1.1 408 "), seen.answer[:200]
    assert seen.closed_by_server and seen.trickled < 60, seen
    silent = raw_exchange(gateway, "127.0.0.33", b"", b"", limit_s=40)
    assert silent.answer == b"" and silent.closed_by_server, silent


def test_no_query_string_or_header_reaches_the_log(gateway: GatewayProcess) -> None:
    marker = "QSMARK7f3a"
    query = f"?app=web&{marker}=1&token={marker}-secret"
    headers = {"X-Trace": marker, "Authorization": f"Bearer {marker}", **GITLAB}
    with client(gateway, "127.0.0.41") as http:
        answers = [
            http.get("/health" + query, headers={"X-Trace": marker}).status_code,
            http.post(f"/hooks/gitlab?app={marker}", json={}, headers=headers).status_code,
            http.post("/hooks/gitlab" + query, json={}, headers=headers).status_code,
            http.post("/api/tasks" + query, json={}, headers=headers).status_code,
            http.post("/chatops/dingtalk" + query, json={}, headers=headers).status_code,
            http.get("/no/such/page" + query).status_code,
            http.post("/api/tasks" + query, content=DEEP, headers={**JSON}).status_code,
        ]
    assert answers == [200, 401, 401, 401, 401, 404, 401]
    time.sleep(0.5)  # the log is unbuffered; give the process a moment to write
    log = gateway.log_text()
    assert marker not in log, [line for line in log.splitlines() if marker in line]
    access = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    assert len(access) >= len(answers)
    assert all("?" not in entry["path"] for entry in access)
    assert not re.search(r'"(GET|POST) /', log), "uvicorn's own access log is on"
