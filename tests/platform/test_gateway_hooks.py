"""POST /hooks/gitlab, /chatops/dingtalk and /api/approvals over real HTTP: GitLab token per app,
tag rules, paused triggers, duplicate deliveries → one run (counted through the Prefect API);
DingTalk signatures, replay, stale timestamps, user mapping and the session-webhook reply."""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

import pytest

from quayside.ledger.environments import ensure_app_env, pause_auto_triggers, resume_auto_triggers
from quayside.runs import read_run
from quayside.triggers.gitlab import dedupe_key
from quayside.triggers.idempotency import TAG_TRIGGERS, scoped_key
from testbed import dingtalk
from testbed.platform import Platform, count_runs
from tests.platform.test_gateway_server import DEPLOY, DINGTALK, FIXTURES, Gateway, gateway_fixture  # noqa: F401
from tests.unit.test_default_ref import make_tagged_repo

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]


def gitlab(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "gitlab" / f"{name}.json").read_text())
    return data


def deliver(gateway: Gateway, fixture: dict[str, Any], **header_overrides: str | None) -> Any:
    headers = {k: v for k, v in fixture["headers"].items()}
    for key, value in header_overrides.items():
        name = key.replace("_", "-")
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    return gateway.post("/hooks/gitlab", json=fixture["body"], headers=headers)


def with_tag(fixture: dict[str, Any], tag: str) -> dict[str, Any]:
    changed = copy.deepcopy(fixture)
    changed["body"]["ref"] = f"refs/tags/{tag}"
    return changed


# -- GitLab ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong-secret", "TEST-HOOK-SECRET"])
def test_gitlab_wrong_or_missing_token_is_401(gateway: Gateway, token: str | None) -> None:
    response = deliver(gateway, gitlab("tag_push"), X_Gitlab_Token=token)
    assert response.status_code == 401
    assert "test-hook-secret" not in response.text


def test_gitlab_unknown_project_is_401(gateway: Gateway) -> None:
    fixture = gitlab("tag_push")
    fixture["body"]["project"] = {"id": 9, "path_with_namespace": "someone/else"}
    fixture["body"].pop("repository", None)
    assert deliver(gateway, fixture).status_code == 401


def test_gitlab_tag_matching_no_rule_and_branch_push_start_nothing(gateway: Gateway) -> None:
    response = deliver(gateway, with_tag(gitlab("tag_push"), "nightly-7"))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "matches no tag rule" in response.json()["reason"]
    push = deliver(gateway, gitlab("push"))
    assert push.status_code == 200 and push.json()["status"] == "ignored"


def test_gitlab_paused_environment_starts_nothing(gateway: Gateway) -> None:
    engine = gateway.engine()
    ensure_app_env(engine, "web", "test")
    pause_auto_triggers(engine, "web", "test", actor="ops", reason="freeze for audit")
    try:
        response = deliver(gateway, with_tag(gitlab("tag_push"), "qa-paused"))
    finally:
        resume_auto_triggers(engine, "web", "test", actor="ops")
        engine.dispose()
    assert response.status_code == 200
    assert response.json()["status"] == "paused"
    assert "freeze for audit" in response.json()["reason"]
    body = gitlab("tag_push")["body"]
    key = tag_run_key(body, "qa-paused", "test")
    assert count_runs(gateway_api(gateway), key) == 0


def tag_run_key(body: dict[str, Any], tag: str, env: str) -> str:
    """The Prefect idempotency key of the deploy of ``tag`` a GitLab delivery for app web
    starts (scoped: tag triggers share one principal)."""
    key = dedupe_key("web", body["project"]["path_with_namespace"], tag, body["checkout_sha"])
    return scoped_key(user=TAG_TRIGGERS, deployment=DEPLOY, app="web", env=env, key=key)


def gateway_api(gateway: Gateway) -> str:
    import os

    return os.environ["PREFECT_API_URL"]


def test_gitlab_duplicate_deliveries_start_one_run(gateway: Gateway, platform: Platform) -> None:
    """Three Tag Push deliveries and the tag's Pipeline Hook: one git-deploy run."""
    fixture = gitlab("tag_push")
    answers = [deliver(gateway, fixture) for _ in range(3)]
    answers.append(deliver(gateway, gitlab("pipeline_tag_success")))
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    ids = {a.json()["flow_run_id"] for a in answers}
    assert len(ids) == 1
    first = answers[0].json()
    assert first["environment"] == "prod" and first["approval"] is True
    body = fixture["body"]
    key = tag_run_key(body, "release-v1.0.0", "prod")
    assert count_runs(platform.api_url, key) == 1


FORGED_ROWS = "eve\n| approvals | 1 of 1 — pre-approved by boss |\n| self-approval | allowed |"


def test_gitlab_hostile_username_is_refused_and_starts_nothing(
    gateway: Gateway, platform: Platform
) -> None:
    """A verified Tag Push whose user_username (the release's requester, shown in the approval
    table) carries newlines and '|': 400 naming the field, no run; the value is not echoed."""
    fixture = with_tag(gitlab("tag_push"), "release-v6.6.6")
    fixture["body"]["user_username"] = FORGED_ROWS
    response = deliver(gateway, fixture)
    assert response.status_code == 400, response.text
    assert "user_username: a user name has letters, digits" in response.json()["error"]
    assert "approvals" not in response.text and "boss" not in response.text
    body = fixture["body"]
    key = tag_run_key(body, "release-v6.6.6", "prod")
    assert count_runs(platform.api_url, key) == 0


def test_git_hook_hostile_pusher_is_refused(gateway: Gateway) -> None:
    body = {"app": "site", "ref": "refs/tags/qa-66", "commit": "a" * 40, "pusher": FORGED_ROWS}
    refused = gateway.post("/hooks/git", json=body, token=gateway.tokens["githook"])
    assert refused.status_code == 422
    assert [p.split(":")[0] for p in refused.json()["problems"]] == ["pusher"]
    assert "approvals" not in refused.text


def test_dingtalk_hostile_sender_is_refused(gateway: Gateway) -> None:
    refused = chat(gateway, "deploy web to test", staff_id="user\n| approvals | 1 of 1 |")
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("senderStaffId: a DingTalk user id has")


# -- DingTalk --------------------------------------------------------------------------------


def sign(timestamp: str, secret: str = DINGTALK["app_secret"]) -> str:
    return dingtalk.sign(timestamp, secret)


def chat(
    gateway: Gateway,
    text: str,
    *,
    staff_id: str | None = None,
    timestamp: str | None = None,
    signature: str | None = None,
) -> Any:
    body, headers = dingtalk.callback(
        text,
        secret=DINGTALK["app_secret"],
        staff_id=staff_id,
        session_webhook=gateway.receiver.url + "/robot/sendBySession?session=test",
        timestamp=timestamp,
        signature=signature,
    )
    return gateway.post("/chatops/dingtalk", json=body, headers=headers)


def reply_text(response: Any) -> str:
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]["content"]
    return text


def test_dingtalk_fixture_signature_is_what_we_compute() -> None:
    assert sign(DINGTALK["headers"]["timestamp"]) == DINGTALK["headers"]["sign"]


def test_dingtalk_help_reply_goes_to_the_session_webhook(gateway: Gateway) -> None:
    before = len(gateway.receiver.messages)
    text = reply_text(chat(gateway, "@robot 帮助"))
    assert "deploy web to dev" in text
    assert gateway.receiver.messages[before:] and (
        gateway.receiver.messages[before]["text"]["content"] == text
    )


def test_dingtalk_bad_signature_stale_and_replayed_are_refused(gateway: Gateway) -> None:
    now = str(int(time.time() * 1000))
    assert chat(gateway, "help", timestamp=now, signature=sign(now, "wrong")).status_code == 401
    stale = str(int(time.time() * 1000) - 3_601_000)
    response = chat(gateway, "help", timestamp=stale)
    assert response.status_code == 401 and "away from now" in response.json()["error"]
    assert chat(gateway, "help", timestamp=now).status_code == 200
    replay = chat(gateway, "help", timestamp=now)
    assert replay.status_code == 401 and "already received" in replay.json()["error"]
    missing = gateway.post("/chatops/dingtalk", json=DINGTALK["body"])
    assert missing.status_code == 401


def test_dingtalk_unparsable_unknown_user_and_wrong_role_start_nothing(gateway: Gateway) -> None:
    assert "Quayside" in reply_text(chat(gateway, "please make coffee"))
    assert "not linked" in reply_text(chat(gateway, "deploy web to test", staff_id="nobody"))
    denied = reply_text(chat(gateway, "deploy web to test", staff_id="reporter-staff-id"))
    assert "permission denied" in denied and "DEVELOPER" in denied
    injected = reply_text(chat(gateway, "deploy web;touch${IFS}/tmp/x to test"))
    assert "not valid" in injected or "Quayside" in injected


def test_dingtalk_deploy_starts_a_run_and_status_answers(gateway: Gateway) -> None:
    if DEPLOY == "git-deploy":  # takes a required ref: the chat user is asked for one
        assert "missing: ref" in reply_text(chat(gateway, "执行test环境web流水线"))
    text = reply_text(chat(gateway, "执行test环境web流水线 qa-chat-1"))
    assert "started" in text and "/runs/flow-run/" in text
    run_id = text.rsplit("/", 1)[1].strip()
    gateway.runs.append(run_id)
    status = reply_text(chat(gateway, "status web test"))
    assert status.startswith("web")


def test_chat_deploy_without_a_ref_uses_the_environments_default_ref(gateway: Gateway) -> None:
    """The README's headline command names no ref: docs/dev's default_ref is latest-tag (the
    newest tag matching its tag rule ^dev-), docs/test's is the branch main; the reply says
    which ref it chose, and the run deploys that ref."""
    make_tagged_repo(
        gateway.home / "git" / "docs.git",
        [
            ("dev-1", "2024-01-01T00:00:00Z", True),
            ("dev-2", "2024-01-02T00:00:00Z", False),
            ("qa-9", "2024-01-03T00:00:00Z", True),
        ],
    )
    text = reply_text(chat(gateway, "执行dev环境docs流水线"))
    assert "docs → dev @ dev-2 (newest tag matching ^dev-)" in text, text
    assert "started: " in text and "/runs/flow-run/" in text
    run_id = text.rsplit("/", 1)[1].strip()
    gateway.runs.append(run_id)
    assert read_run(run_id).parameters["ref"] == "dev-2"
    text = reply_text(chat(gateway, "deploy docs to test"))
    assert "docs → test @ main (default_ref of docs/test)" in text, text
    run_id = text.rsplit("/", 1)[1].strip()
    gateway.runs.append(run_id)
    assert read_run(run_id).parameters["ref"] == "main"
    # an explicit ref wins; an environment without a default still asks for one
    assert "@ dev-1\n" in reply_text(chat(gateway, "deploy docs to dev dev-1"))
    missing = reply_text(chat(gateway, "执行test环境web流水线"))
    assert "missing: ref" in missing and "default_ref of apps.web.environments.test" in missing


def test_a_re_pushed_tag_says_which_run_it_already_has(gateway: Gateway) -> None:
    body = {"app": "site", "ref": "refs/tags/qa-again-1", "commit": "c" * 40}
    first = gateway.post("/hooks/git", json=body, token=gateway.tokens["githook"])
    assert first.status_code == 202, first.text
    started = first.json()
    assert started["status"] == "started"
    assert started["message"] == f"started: {started['ui_url']}"
    again = gateway.post("/hooks/git", json=body, token=gateway.tokens["githook"]).json()
    assert again["flow_run_id"] == started["flow_run_id"]
    assert again["status"] in {"already_running", "already_ran"}
    deadline = time.monotonic() + 120
    while not read_run(started["flow_run_id"]).final and time.monotonic() < deadline:
        time.sleep(0.5)
    state = read_run(started["flow_run_id"])
    assert state.final, state
    ran = gateway.post("/hooks/git", json=body, token=gateway.tokens["githook"])
    assert ran.status_code == 202
    assert ran.json()["status"] == "already_ran"
    assert ran.json()["message"] == f"already ran: {started['ui_url']} ({state.state_name})"
    assert ran.json()["state"] == state.state_name


# -- approvals -------------------------------------------------------------------------------


def test_approvals_need_a_token_and_an_existing_waiting_run(gateway: Gateway) -> None:
    body = {"decision": "approve", "comment": "ok"}
    assert gateway.post(f"/api/approvals/{uuid.uuid4()}", json=body).status_code == 401
    token = gateway.tokens["boss"]
    missing = gateway.post(f"/api/approvals/{uuid.uuid4()}", json=body, token=token)
    assert missing.status_code == 404
    assert gateway.post("/api/approvals/not-a-run", json=body, token=token).status_code == 404
    bad = gateway.post(f"/api/approvals/{uuid.uuid4()}", json={"decision": "maybe"}, token=token)
    assert bad.status_code == 422 and bad.json()["problems"][0].startswith("decision: ")
    started = deliver(gateway, gitlab("tag_push")).json()["flow_run_id"]  # the deduped run
    conflict = gateway.post(f"/api/approvals/{started}", json=body, token=token)
    # hello-release has no approval gate: never paused → 409; git-deploy may pause → 200
    assert conflict.status_code in (200, 409), conflict.text
