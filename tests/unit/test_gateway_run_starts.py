"""Run starts take turns (quayside.gateway.run_starts): a burst of submissions waits for a
slot without holding the gateway's threads, so its other pages answer meanwhile; an API start
that waits too long is answered 503 with Retry-After, having started and recorded nothing,
and the same request sent again starts its run once; hooks wait as long as it takes; chat
says it is busy; a slot is only taken once the caller is authenticated.

The gateway, the ledger, roles and the inventory are real; Prefect is the stand-in of
tests/unit/test_gateway_idempotency.py, held inside its run creation to keep a slot taken."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from quayside.gateway import triggering
from quayside.gateway.config import GatewayConfig
from quayside.gateway.run_starts import RunStartsBusy, RunStartSlots
from quayside.gateway.web_access import error_page
from quayside.ledger.audit import list_events
from quayside.ledger.db import make_engine
from quayside.ledger.submissions import submission_of_run
from quayside.notify.dingtalk_signing import compute_signature
from quayside.runs import RunHandle
from testbed import FIXTURES_DIR
from tests.unit.test_gateway_idempotency import FakePrefect, deploy, gateway_client

CALLBACK = json.loads((FIXTURES_DIR / "dingtalk" / "outgoing_text.json").read_text("utf-8"))
SECRET = CALLBACK["app_secret"]


class HeldPrefect(FakePrefect):
    """Prefect whose run creation waits until ``go`` is set; ``inside`` counts creations
    under way and ``most`` the most at once."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.inside = 0
        self.most = 0
        self._lock = threading.Lock()

    def start_run(
        self, deployment: str, parameters: dict[str, Any], *, idempotency_key: str, **kw: Any
    ) -> RunHandle:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            assert self.go.wait(30), "the test never let the run creation finish"
            return super().start_run(deployment, parameters, idempotency_key=idempotency_key, **kw)
        finally:
            with self._lock:
                self.inside -= 1


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def prefect(monkeypatch: pytest.MonkeyPatch) -> HeldPrefect:
    held = HeldPrefect()
    monkeypatch.setattr(triggering, "start_run", held.start_run)
    return held


@pytest.fixture
def one_slot(tmp_path: Path, prefect: HeldPrefect) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A gateway with one run-start slot and a 1 s wait, its slot held by ann's first task
    (inside the stand-in's run creation until ``prefect.go`` is set)."""
    config = GatewayConfig(run_starts=1, run_start_wait_s=1, dingtalk_app_secret=SECRET)
    http, tokens = gateway_client(tmp_path, config)
    with http, ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(deploy, http, tokens["ann"], "alpha", "test", "first-key-0001")
        until(lambda: prefect.inside == 1, "the first start to take the slot")
        yield http, tokens
        prefect.go.set()
        assert first.result(timeout=30).status_code == 202


def slots(http: TestClient) -> RunStartSlots:
    found: RunStartSlots = http.app.state.run_starts  # type: ignore[attr-defined]
    return found


def test_an_api_start_waits_its_turn_and_is_refused_503_when_the_wait_is_over(
    tmp_path: Path, one_slot: tuple[TestClient, dict[str, str]], prefect: HeldPrefect
) -> None:
    http, tokens = one_slot
    bearer = {"Authorization": f"Bearer {tokens['ann']}"}
    # the only slot is taken: the rest of the gateway still answers
    assert http.get("/health").status_code == 200
    assert http.get("/api/releases", headers=bearer).status_code == 200
    refused = deploy(http, tokens["bob"], "beta", "prod", "second-key-001")
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "5"
    body = refused.json()
    assert "busy starting other runs (1 at a time)" in body["error"]
    assert "nothing was started or recorded" in body["error"]
    assert "Idempotency-Key" in body["hint"]
    assert "Traceback" not in refused.text
    assert len(prefect.runs) == 0 and prefect.inside == 1  # nothing started for it
    prefect.go.set()
    until(lambda: len(prefect.runs) == 1, "the first start to finish")
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        # the refused request left nothing in the ledger: no audit event of bob's
        assert not [e for e in list_events(engine, limit=1000) if e.actor == "bob"]
        # sent again as the hint says: its run starts, once
        again = deploy(http, tokens["bob"], "beta", "prod", "second-key-001")
        assert again.status_code == 202, again.text
        twice = deploy(http, tokens["bob"], "beta", "prod", "second-key-001")
        assert twice.json()["flow_run_id"] == again.json()["flow_run_id"]
        assert len(prefect.runs) == 2
        assert submission_of_run(engine, again.json()["flow_run_id"]) is not None
        assert [e for e in list_events(engine, limit=1000) if e.actor == "bob"]
    finally:
        engine.dispose()


def test_no_slot_is_taken_before_the_caller_is_authenticated(
    one_slot: tuple[TestClient, dict[str, str]], prefect: HeldPrefect
) -> None:
    http, _ = one_slot
    forged = http.post(
        "/hooks/gitlab",
        json={"object_kind": "tag_push"},
        headers={"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": "forged"},
    )
    assert forged.status_code == 401, forged.text  # not 503: it never queued for a slot
    anonymous = deploy(http, "qs_000000000000_nope", "alpha", "test", "anon-key-0001")
    assert anonymous.status_code == 401, anonymous.text
    assert slots(http).waiting == 0


def test_a_refused_request_is_answered_at_once_without_taking_a_turn(
    one_slot: tuple[TestClient, dict[str, str]], prefect: HeldPrefect
) -> None:
    """Plan then start: a request refused by its checks (a malformed body, an unknown
    deployment, a missing header) or one that starts nothing (a branch push) is answered
    while the only slot is held, never queued for it (and never 503)."""
    http, tokens = one_slot
    bearer = {"Authorization": f"Bearer {tokens['ann']}"}
    keyed = bearer | {"Idempotency-Key": "refused-key-0001"}
    answers = {
        "malformed task": http.post("/api/tasks", json={"task_name": 5}, headers=keyed),
        "unknown deployment": http.post(
            "/api/tasks",
            json={"task_name": "x", "temp_id": "no-such-deployment", "schedule": "ready"},
            headers=keyed,
        ),
        "run without its key": http.post(
            "/api/runs", json={"deployment": "git-deploy", "parameters": {}}, headers=bearer
        ),
        "unknown run deployment": http.post(
            "/api/runs", json={"deployment": "no-such-deployment", "parameters": {}}, headers=keyed
        ),
    }
    for what, answer in answers.items():
        assert answer.status_code in (400, 403, 404, 422), (what, answer.text)
        assert "Traceback" not in answer.text
    assert "no-such-deployment" in answers["unknown deployment"].text
    branch = {"app": "alpha", "ref": "refs/heads/main", "commit": "b" * 40, "pusher": "ann"}
    ignored = http.post("/hooks/git", json=branch, headers=bearer)
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored", ignored.text
    assert slots(http).waiting == 0 and prefect.inside == 1 and not prefect.runs


def test_a_hook_waits_as_long_as_it_takes(
    one_slot: tuple[TestClient, dict[str, str]], prefect: HeldPrefect
) -> None:
    http, tokens = one_slot
    push = {"app": "alpha", "ref": "refs/tags/v9", "commit": "a" * 40, "pusher": "ann"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer: Future[httpx.Response] = pool.submit(
            http.post, "/hooks/git", json=push, headers={"Authorization": f"Bearer {tokens['ann']}"}
        )
        until(lambda: slots(http).waiting == 1, "the hook to wait for its turn")
        time.sleep(1.5)  # past the 1 s an API start would wait
        assert not answer.done()  # still waiting, not refused
        prefect.go.set()
        delivered = answer.result(timeout=30)
    assert delivered.status_code in (200, 202), delivered.text


def test_chat_says_busy_for_a_deploy_and_never_queues_help(
    one_slot: tuple[TestClient, dict[str, str]], prefect: HeldPrefect
) -> None:
    http, _ = one_slot
    now = int(time.time() * 1000)
    help_reply = chat(http, str(now), "help", "m-help")
    assert help_reply.status_code == 200, help_reply.text
    assert "deploy web to prod" in help_reply.json()["text"]["content"]
    busy = chat(http, str(now + 1), "deploy alpha to test v1", "m-deploy")
    assert busy.status_code == 200, busy.text
    assert "busy starting other runs and started nothing" in busy.json()["text"]["content"]
    # a deploy its checks refuse is answered with the refusal, not "busy"
    refused = chat(http, str(now + 2), "deploy nosuchapp to test v1", "m-refused")
    assert refused.status_code == 200, refused.text
    assert "nosuchapp" in refused.json()["text"]["content"]
    assert "busy" not in refused.json()["text"]["content"]
    assert len(prefect.runs) == 0 and prefect.inside == 1


def chat(http: TestClient, timestamp: str, text: str, msg_id: str) -> httpx.Response:
    body: dict[str, Any] = copy.deepcopy(CALLBACK["body"])
    body.update(
        senderStaffId="ann-staff",
        msgId=msg_id,
        text={"content": text},
        sessionWebhookExpiredTime=1,  # no reply POST: the answer is the response body
    )
    headers = {"timestamp": timestamp, "sign": compute_signature(timestamp, SECRET)}
    return http.post("/chatops/dingtalk", json=body, headers=headers)


def test_starts_beyond_the_limit_wait_and_all_get_their_run(
    tmp_path: Path, prefect: HeldPrefect
) -> None:
    http, tokens = gateway_client(tmp_path, GatewayConfig(run_starts=2, run_start_wait_s=30))
    with http, ThreadPoolExecutor(max_workers=5) as pool:
        answers = [
            pool.submit(deploy, http, tokens["ann"], "alpha", "test", f"burst-key-{i:04d}")
            for i in range(5)
        ]
        # the two holding a slot reach the run creation a moment after taking it
        until(
            lambda: slots(http).waiting == 3 and prefect.inside == 2,
            "two starts at work and three waiting their turn",
        )
        prefect.go.set()
        codes = [a.result(timeout=30).status_code for a in answers]
    assert codes == [202] * 5
    assert len(prefect.runs) == 5
    assert prefect.most == 2  # never more run creations at once than the slots


def test_slots_are_given_back_when_the_work_fails() -> None:
    async def scenario() -> None:
        slots = RunStartSlots(1, 0.2)
        with pytest.raises(ValueError):
            async with slots.slot():
                assert slots.free == 0
                raise ValueError("the start failed")
        assert slots.free == 1
        async with slots.slot():
            with pytest.raises(RunStartsBusy):
                async with slots.slot():
                    pass  # never reached: the only slot is held above
        assert slots.free == 1

    anyio.run(scenario)


def test_the_publish_page_s_refusal_carries_retry_after() -> None:
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": [], "state": {}})
    page = error_page(request, RunStartsBusy("busy", hint="press Publish again"))
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert b"press Publish again" in bytes(page.body)


@pytest.mark.parametrize(
    ("name", "value"),
    [("QUAYSIDE_GATEWAY_RUN_STARTS", "0"), ("QUAYSIDE_GATEWAY_RUN_START_WAIT", "x")],
)
def test_bad_settings_are_named(name: str, value: str) -> None:
    from quayside.errors import ConfigError

    with pytest.raises(ConfigError, match=name):
        GatewayConfig.from_env({name: value})


def test_defaults() -> None:
    config = GatewayConfig.from_env({})
    assert (config.run_starts, config.run_start_wait_s) == (1, 30)
