"""The security review's attacks on the trigger paths, over real HTTP against the test gateway
and the session's real Prefect platform: each is refused and starts nothing.

- an arbitrary command (hello-release) through the task API or chat;
- a run of an app of one space aimed at another space's hosts, or at another space's app;
- arguments a deployment does not take, and the ones Quayside sets itself (who asked, the
  approval switch, an approval request id) — refused with the field named, never dropped;
- chat starting a deployment the task API may not start (``triggerable``).
"""

from __future__ import annotations

from typing import Any

import pytest

from quayside.ledger.models import RunSubmission
from quayside.runs import read_run
from tests.platform.test_gateway_hooks import chat, reply_text
from tests.platform.test_gateway_server import Gateway, gateway_fixture  # noqa: F401

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]


def post_task(gateway: Gateway, token: str, **fields: Any) -> Any:
    body: dict[str, Any] = {"task_name": "attack", "schedule": "ready", "details": ""}
    body.update(fields)
    return gateway.post("/api/tasks", token=token, json=body)


def runs_started(gateway: Gateway) -> int:
    from sqlalchemy import func, select

    from quayside.ledger.db import unit_of_work

    engine = gateway.engine()
    try:
        with unit_of_work(engine) as session:
            return int(session.scalar(select(func.count()).select_from(RunSubmission)) or 0)
    finally:
        engine.dispose()


def test_an_arbitrary_command_cannot_be_started_through_the_api(gateway: Gateway) -> None:
    before = runs_started(gateway)
    for token in (gateway.tokens["dev"], gateway.tokens["boss"]):
        response = post_task(
            gateway,
            token,
            temp_id="hello-release",
            args={"app": "web", "group": "b-web", "command": ["sh", "-c", "id > proof.txt"]},
        )
        assert response.status_code == 403, response.text
        assert "hello-release" in response.json()["error"]
        assert "cannot be started through the API" in response.json()["error"]
    assert runs_started(gateway) == before


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        # B's host under A's app: the hosts are judged against the app's environment
        (
            {"app": "web", "env": "test", "ref": "qa-1", "hosts": ["b-web"]},
            404,
            ["hosts: b-web not in web/test", "w-1"],
        ),
        # B's app: the role is checked on the app the run deploys, in its space
        (
            {"app": "billing", "env": "prod", "ref": "v1"},
            403,
            ["dev needs DEVELOPER or higher", "project 'billing' of space 'team-b'"],
        ),
        # a scope argument the deployment does not take is refused, not dropped
        (
            {"app": "web", "env": "test", "ref": "qa-1", "group": "b-web", "command": ["id"]},
            400,
            ["command: not a parameter of git-deploy", "group: not a parameter of git-deploy"],
        ),
        # nothing a caller sends can name an approval or an identity
        (
            {"app": "web", "env": "prod", "ref": "release-2", "approval_request_id": 1},
            400,
            ["approval_request_id: set by Quayside"],
        ),
        (
            {"app": "web", "env": "prod", "ref": "release-2", "approval": False},
            400,
            ["approval: set by Quayside"],
        ),
        (
            {"app": "web", "env": "test", "ref": "qa-1", "requested_by": "boss"},
            400,
            ["requested_by: set by Quayside"],
        ),
        ({"app": "web", "ref": "qa-1"}, 400, ["env: required"]),
    ],
)
def test_a_developer_cannot_aim_a_run_outside_what_they_may_touch(
    gateway: Gateway, args: dict[str, Any], status: int, words: list[str]
) -> None:
    before = runs_started(gateway)
    response = post_task(gateway, gateway.tokens["dev"], temp_id="git-deploy", args=args)
    assert response.status_code == status, response.text
    answer = response.json()
    error = f"{answer['error']} ({answer.get('hint')})"
    for word in words:
        assert word in error, error
    assert "Traceback" not in response.text
    assert runs_started(gateway) == before


def test_hosts_of_another_space_in_the_hosts_field_are_refused(gateway: Gateway) -> None:
    response = post_task(
        gateway,
        gateway.tokens["dev"],
        temp_id="git-deploy",
        args={"app": "web", "env": "test", "ref": "qa-1"},
        hosts={"1": "b-web"},
    )
    assert response.status_code == 404, response.text
    assert "b-web not in web/test" in response.json()["error"]


def test_an_accepted_run_is_recorded_as_the_token_user(gateway: Gateway) -> None:
    response = post_task(
        gateway,
        gateway.tokens["dev"],
        temp_id="git-deploy",
        args={"app": "web", "env": "test", "ref": "qa-sec-1"},
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["flow_run_id"]
    assert read_run(run_id).parameters["requested_by"] == "dev"
    from quayside.ledger.submissions import submission_of_run

    engine = gateway.engine()
    try:
        row = submission_of_run(engine, run_id)
    finally:
        engine.dispose()
    assert row is not None
    assert (row.principal, row.deployment, row.app, row.env, row.via) == (
        "dev",
        "git-deploy",
        "web",
        "test",
        "task-api",
    )


def test_chat_honours_triggerable(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """The review started a deployment from chat that the task API refuses: chat now applies
    the same ``triggerable`` flag (the test gateway runs in this process, so the catalogue
    entry chat reads can be swapped for one that is not triggerable)."""
    from dataclasses import replace

    from quayside.gateway import routes_chat
    from quayside.gateway.triggering import catalogue_entry

    def closed(name: str) -> Any:
        return replace(catalogue_entry(name), triggerable=False)

    monkeypatch.setattr(routes_chat, "catalogue_entry", closed)
    before = runs_started(gateway)
    for text in ("rollback web test", "deploy web to test qa-closed"):
        reply = reply_text(chat(gateway, text))
        assert "not started" in reply and "cannot be started from chat" in reply, reply
    assert runs_started(gateway) == before


def test_chat_refuses_another_spaces_app(gateway: Gateway) -> None:
    text = reply_text(chat(gateway, "deploy billing to prod v1"))
    assert "permission denied" in text and "team-b" in text


def test_the_git_hooks_pusher_is_information_not_the_requester(gateway: Gateway) -> None:
    """With a shared git account the hook's ``pusher`` is whatever the git server says: the
    requester (compared by the self-approval rule) is the token's user; the pusher is a tag."""
    response = gateway.post(
        "/hooks/git",
        token=gateway.tokens["githook"],
        json={"app": "site", "ref": "refs/tags/qa-pusher-1", "commit": "b" * 40, "pusher": "boss"},
    )
    assert response.status_code == 202, response.text
    run = read_run(response.json()["flow_run_id"])
    assert run.parameters["requested_by"] == "githook"
    assert "pusher:boss" in run.tags
