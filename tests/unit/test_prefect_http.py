"""The plain-HTTP Prefect client's answers to each kind of reply, against a loopback server
that answers as Prefect's API does (status codes and bodies of its REST API); the calls
themselves run against a real Prefect server in tests/platform."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quayside.api_auth import APIAuthError
from quayside.errors import InputError, NotFoundError, QuaysideError
from quayside.runs.client import forget_deployment_ids, start_run
from quayside.runs.prefect_http import PrefectHTTP, PrefectUnavailable


class _Scripted(ThreadingHTTPServer):
    replies: list[tuple[int, object]]
    seen: list[tuple[str, str, dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: _Scripted

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        status, payload = self.server.replies.pop(0) if self.server.replies else (200, {})
        if status == 0:  # the answer is lost: the connection closes without one
            self.close_connection = True
            return
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Scripted]:
    server = _Scripted(("127.0.0.1", 0), _Handler)
    server.replies, server.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{server.server_address[1]}/api")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "admin:s3cret")
    monkeypatch.setattr("quayside.runs.prefect_http.RETRY_BACKOFF_S", 0.01)
    forget_deployment_ids()  # each test's server is a new platform
    yield server
    forget_deployment_ids()
    server.shutdown()
    server.server_close()


def test_calls_send_prefects_auth_header_and_json(api: _Scripted) -> None:
    api.replies = [(201, {"id": "r1"})]
    with PrefectHTTP() as http:
        assert http.call("POST", "/flow_runs/filter", {"limit": 1}) == {"id": "r1"}
        assert http.last_status == 201
    method, path, headers, body = api.seen[0]
    assert (method, path, json.loads(body)) == ("POST", "/api/flow_runs/filter", {"limit": 1})
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"admin:s3cret").decode()


def test_a_refused_parameter_names_the_field(api: _Scripted) -> None:
    detail = (
        "Error creating flow run: Validation failed for field 'batch'. "
        "Failure reason: 'x' is not valid under any of the given schemas"
    )
    api.replies = [(409, {"detail": detail})]
    with PrefectHTTP() as http, pytest.raises(InputError, match=r"^batch: 'x' is not valid"):
        http.call("POST", "/deployments/d/create_flow_run", {})


def test_401_names_the_api_and_what_to_set(api: _Scripted) -> None:
    api.replies = [(401, {"detail": "Unauthorized"})]
    with PrefectHTTP() as http, pytest.raises(APIAuthError, match="refused .* credentials"):
        http.call("GET", "/flow_runs/x")


def test_404_is_none_when_asked_else_not_found(api: _Scripted) -> None:
    api.replies = [(404, {"detail": "nope"}), (404, {"detail": "nope"})]
    with PrefectHTTP() as http:
        assert http.call("GET", "/flow_runs/x", missing_ok=True) is None
        with pytest.raises(NotFoundError, match="flow_runs/x"):
            http.call("GET", "/flow_runs/x")


def test_busy_answers_are_retried_then_reported(api: _Scripted) -> None:
    api.replies = [(503, {}), (429, {}), (200, {"ok": True})]
    with PrefectHTTP() as http:
        assert http.call("GET", "/health") == {"ok": True}
    assert len(api.seen) == 3
    api.replies = [(503, {"detail": "down"})] * 10
    with PrefectHTTP() as http, pytest.raises(QuaysideError, match="refused the request"):
        http.call("GET", "/health")


def test_nothing_listening_is_unavailable_naming_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with PrefectHTTP() as http, pytest.raises(PrefectUnavailable, match=r"127\.0\.0\.1:9/api"):
        http.call("GET", "/health")


def test_the_release_path_never_imports_prefect() -> None:
    code = (
        "import sys, quayside.runs, quayside.runs.client, quayside.cli.commands_release; "
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_whose_answer_was_lost_is_asked_for_again_under_the_same_key(
    api: _Scripted,
) -> None:
    run = {
        "id": "3f1c2a9e-1d2b-4c5d-8e9f-0a1b2c3d4e5f",
        "name": "brave-fox",
        "parameters": {"app": "shop"},
        "tags": [],
        "state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {}},
    }
    api.replies = [(200, {"id": "dep-1"}), (0, {}), (200, run)]
    handle = start_run("hello-release", {"app": "shop"})
    assert handle.id == run["id"] and handle.created
    posts = [json.loads(body) for method, _, _, body in api.seen if method == "POST"]
    assert len(posts) == 2  # sent again after the lost answer ...
    key = posts[0]["idempotency_key"]
    assert key and posts[1]["idempotency_key"] == key  # ... as the same run


def test_an_answer_that_is_not_json_names_the_likely_mistake(api: _Scripted) -> None:
    api.replies = [(200, b"<html>the UI</html>")]
    with PrefectHTTP() as http, pytest.raises(QuaysideError, match="not JSON") as raised:
        http.call("GET", "/flow_runs/x")
    assert raised.value.hint and "/api" in raised.value.hint


RUN = {
    "id": "3f1c2a9e-1d2b-4c5d-8e9f-0a1b2c3d4e5f",
    "name": "brave-fox",
    "parameters": {"app": "shop"},
    "tags": [],
    "state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {}},
}
GONE = (404, {"detail": "Deployment not found"})


def _requests(api: _Scripted) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _, _ in api.seen]


def test_the_deployment_is_read_by_name_once_per_process(api: _Scripted) -> None:
    api.replies = [(200, {"id": "dep-1"}), (201, RUN), (201, RUN)]
    start_run("hello-release", {"app": "shop"})
    start_run("hello-release", {"app": "web"})
    assert _requests(api) == [
        ("GET", "/api/deployments/name/hello-release/hello-release"),
        ("POST", "/api/deployments/dep-1/create_flow_run"),
        ("POST", "/api/deployments/dep-1/create_flow_run"),
    ]


def test_a_deployment_registered_anew_is_read_again_and_the_run_created_once(
    api: _Scripted,
) -> None:
    api.replies = [(200, {"id": "dep-1"}), (201, RUN)]
    start_run("hello-release", {"app": "shop"})
    api.seen.clear()
    # the deployment was deleted and registered again (a new id) since: the cached id is gone
    api.replies = [GONE, (200, {"id": "dep-2"}), (201, RUN), (201, RUN)]
    handle = start_run("hello-release", {"app": "web"})
    assert handle.id == RUN["id"] and handle.created
    start_run("hello-release", {"app": "api"})
    assert _requests(api) == [
        ("POST", "/api/deployments/dep-1/create_flow_run"),
        ("GET", "/api/deployments/name/hello-release/hello-release"),
        ("POST", "/api/deployments/dep-2/create_flow_run"),
        ("POST", "/api/deployments/dep-2/create_flow_run"),  # the new id is the cached one
    ]
    first, second = (json.loads(body) for m, _, _, body in api.seen[:3] if m == "POST")
    assert first["idempotency_key"] == second["idempotency_key"]  # one run asked for


def test_a_deployment_gone_for_good_is_not_found_and_not_kept(api: _Scripted) -> None:
    api.replies = [(200, {"id": "dep-1"}), (201, RUN)]
    start_run("hello-release", {"app": "shop"})
    api.replies = [GONE, (404, {"detail": "Deployment not found"})]
    with pytest.raises(NotFoundError, match="'hello-release/hello-release' is not registered"):
        start_run("hello-release", {"app": "web"})
    api.seen.clear()
    api.replies = [(200, {"id": "dep-3"}), (201, RUN)]
    start_run("hello-release", {"app": "web"})
    assert _requests(api)[0] == ("GET", "/api/deployments/name/hello-release/hello-release")


_RUN_ID = "0d6f8c2e-1b2a-4c3d-9e8f-7a6b5c4d3e2f"


def _run(labels: dict[str, str], run_count: int = 1) -> dict[str, object]:
    return {
        "id": _RUN_ID,
        "name": "amber-fox",
        "state": {"type": "COMPLETED", "name": "Completed"},
        "labels": labels,
        "run_count": run_count,
        "parameters": {},
        "tags": [],
    }


def _log(message: str) -> dict[str, object]:
    return {
        "id": "log-1",
        "timestamp": "2026-12-05T12:00:00+00:00",
        "level": 20,
        "message": message,
        "task_run_id": "t",
    }


def test_a_run_that_says_its_lines_are_sent_is_followed_to_its_final_state_only(
    api: _Scripted,
) -> None:
    from quayside.runs import follow_run
    from quayside.runs.log_marker import LABEL

    api.replies = [(200, _run({LABEL: "1"})), (200, [_log("web-1: succeeded")])]
    lines = [line.message for line in follow_run(_RUN_ID, poll_s=0.01)]
    assert lines == ["web-1: succeeded"]
    assert [path.split("?")[0] for _, path, _, _ in api.seen] == [
        f"/api/flow_runs/{_RUN_ID}",
        "/api/logs/filter",
    ]  # one read of the logs after the final state: no waiting for the engine's last line


def test_a_label_left_by_an_earlier_attempt_does_not_count(api: _Scripted) -> None:
    from quayside.runs import follow_run
    from quayside.runs.log_marker import LABEL

    # retried (attempt 2): the label says attempt 1's lines were sent, not this attempt's
    api.replies = [(200, _run({LABEL: "1"}, run_count=2))] + [(200, [])] * 40
    assert list(follow_run(_RUN_ID, poll_s=0.01)) == []
    log_reads = [p for _, p, _, _ in api.seen if p.startswith("/api/logs/filter")]
    assert len(log_reads) > 1  # it went on reading the logs for the engine's last line
