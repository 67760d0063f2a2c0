"""`quayside deploy` through a gateway too busy to take the start (503 with Retry-After: its
run starts took every turn, nothing was started or recorded) sends the same request again,
with the same Idempotency-Key, after the wait the gateway asks for. A loopback HTTP server
answers as the gateway's run_starts does (tests/unit/test_gateway_run_starts.py shows the
gateway's side)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from quayside.cli import gateway_runs
from quayside.cli.gateway_runs import GatewayRefused, busy_wait_s, start_via_gateway

ACCEPTED = {
    "flow_run_id": "7f0c7b1e-0000-4000-8000-000000000001",
    "name": "calm-otter",
    "deployment": "git-deploy",
    "ui_url": "http://127.0.0.1:4200/runs/flow-run/7f0c7b1e",
    "status": "started",
    "requested_by": "ann",
    "submitter": "ann",
}
BUSY = {"error": "the gateway is busy starting other runs", "hint": "send it again", "code": 503}


class Gateway(ThreadingHTTPServer):
    def __init__(self, busy_answers: int) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.busy_answers = busy_answers
        self.keys: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.keys.append(self.headers["Idempotency-Key"])
        busy = len(self.server.keys) <= self.server.busy_answers
        body = json.dumps(BUSY if busy else ACCEPTED).encode()
        self.send_response(503 if busy else 202)
        if busy:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serving(busy_answers: int) -> Iterator[Gateway]:
    server = Gateway(busy_answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def busy_twice() -> Iterator[Gateway]:
    yield from serving(2)


@pytest.fixture
def always_busy() -> Iterator[Gateway]:
    yield from serving(100)


def url(server: Gateway) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_a_busy_gateway_s_start_is_sent_again_with_the_same_key(busy_twice: Gateway) -> None:
    started = start_via_gateway(url(busy_twice), "qs_x", "git-deploy", {"app": "shop"}, None)
    assert started is not None
    handle, requester = started
    assert handle.id == ACCEPTED["flow_run_id"] and handle.created
    assert requester.name == "ann"
    assert len(busy_twice.keys) == 3 and len(set(busy_twice.keys)) == 1


def test_a_gateway_busy_past_the_retries_is_reported_with_its_words(
    always_busy: Gateway,
) -> None:
    with pytest.raises(GatewayRefused) as refused:
        start_via_gateway(url(always_busy), "qs_x", "git-deploy", {"app": "shop"}, None)
    assert "busy starting other runs" in refused.value.message
    assert len(always_busy.keys) == 1 + gateway_runs.BUSY_RETRIES


def test_busy_wait_reads_only_a_503_with_retry_after() -> None:
    def answer(status: int, **headers: str) -> httpx.Response:
        return httpx.Response(status, headers=headers)

    assert busy_wait_s(answer(503, **{"Retry-After": "5"})) == 5.0
    assert busy_wait_s(answer(503, **{"Retry-After": "3600"})) == gateway_runs.BUSY_WAIT_MAX_S
    assert busy_wait_s(answer(503)) is None  # a component down: reported, not retried
    assert busy_wait_s(answer(503, **{"Retry-After": "soon"})) is None
    assert busy_wait_s(answer(429, **{"Retry-After": "5"})) is None  # throttled: not retried
