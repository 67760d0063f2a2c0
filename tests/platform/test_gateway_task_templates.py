"""The older task platform's clients against a real gateway and the session's real Prefect
(seed 000): its bodies, built from the seed's public format (tests/fixtures/tasks), sent to a
gateway whose inventory is shaped like a migrating team's (tests/fixtures/gateway/
codo_inventory.yaml: task template 1, the app's repository, hosts by IP address).

- the seed script's body, verbatim, deploys web to prod on the host its IP names;
- every refused body is a 4xx naming the field and leaves nothing behind: no approval request,
  no run submission, no audit event in the ledger, no flow run in Prefect;
- ``exec_time`` is Asia/Shanghai local time, the approval is opened for the scheduled run;
- a retried task says which run it already has.
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from quayside.ledger.db import unit_of_work
from quayside.ledger.models import ApprovalRequest, AuditEvent, RunSubmission
from quayside.runs import prefect_client, read_run
from quayside.triggers.idempotency import scoped_key
from testbed.platform import Platform, count_runs
from tests.platform.test_gateway_server import FIXTURES, Gateway, running_gateway

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the fixture inventory's timezone


def seed(name: str) -> dict[str, Any]:
    """A task body exactly as the seed's scripts send it."""
    data = json.loads((FIXTURES / "tasks" / name).read_text(encoding="utf-8"))
    assert data["_doc"]["references"], "fixture must carry its documentation reference"
    body: dict[str, Any] = data["body"]
    return body


def tomorrow_local() -> str:
    """``exec_time`` as the seed's scripts format it (``%Y-%m-%d %H:%M:%S``), local time."""
    return (datetime.now(SHANGHAI) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture(scope="module", name="codo")
def codo_gateway(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    text = (FIXTURES / "gateway" / "codo_inventory.yaml").read_text(encoding="utf-8")
    with running_gateway(platform, tmp_path_factory.mktemp("codo"), text) as gw:
        yield gw


def ledger_counts(gateway: Gateway) -> dict[str, int]:
    engine = gateway.engine()
    try:
        with unit_of_work(engine) as session:
            return {
                model.__tablename__: int(
                    session.scalar(select(func.count()).select_from(model)) or 0
                )
                for model in (ApprovalRequest, RunSubmission, AuditEvent)
            }
    finally:
        engine.dispose()


def flow_runs(api_url: str) -> int:
    async def go() -> int:
        async with prefect_client(api_url) as client:
            return int(await client.count_flow_runs())

    return asyncio.run(go())


def test_the_seed_script_body_verbatim_deploys_web_to_prod(codo: Gateway) -> None:
    """codo_post_task.py's body, unchanged: template 1, APP_NAME 'Web', its GIT_URL, hosts
    {1: '172.16.0.101'}, schedule new, exec_time in the past (runs now)."""
    body = seed("seed_script.json")
    response = codo.post("/api/tasks", token=codo.tokens["dev"], json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["code"] == 0  # what the seed's script checks
    assert (answer["deployment"], answer["app"], answer["env"]) == ("git-deploy", "web", "prod")
    assert answer["hosts"] == ["web-101"]
    assert answer["status"] == "started" and answer["msg"] == f"started: {answer['ui_url']}"
    run = read_run(answer["flow_run_id"])
    parameters = {k: run.parameters.get(k) for k in ("app", "env", "ref", "hosts")}
    assert parameters == {"app": "web", "env": "prod", "ref": "codo-beta0.3", "hosts": ["web-101"]}
    assert run.parameters["requested_by"] == "dev"  # the token's user, not "submitter"
    assert run.parameters["approval"] is True  # schedule new, and prod's policy
    # the script run again (same minute): the same run, and it says so
    again = codo.post("/api/tasks", token=codo.tokens["dev"], json=body)
    assert again.status_code == 202, again.text
    repeat = again.json()
    assert repeat["flow_run_id"] == answer["flow_run_id"]
    assert repeat["status"] in {"already_running", "already_ran"}
    assert repeat["msg"].startswith(repeat["status"].replace("_", " ") + ": " + answer["ui_url"])


def script_body(**changes: Any) -> dict[str, Any]:
    """The seed script's body with ``changes``; ``args`` changes go into its literal string."""
    body = seed("seed_script.json")
    args = changes.pop("args", None)
    if args is not None:
        literal = dict(ast.literal_eval(body["args"]))  # the fixture's own literal
        literal.update(args)
        body["args"] = str({k: v for k, v in literal.items() if v is not None})
    body.update(changes)
    return body


REFUSED = [
    pytest.param(
        {**seed("seed_example3.json")},
        "dev",
        400,
        ["args.VERSION: not an argument of task template 1", "takes args: TAG, APP_NAME"],
        id="example3-unknown-argument",
    ),
    pytest.param(
        script_body(hosts="{1: '172.16.0.9'}"),
        "dev",
        404,
        ["hosts: 172.16.0.9: no host of the inventory has this name or address"],
        id="unknown-ip",
    ),
    pytest.param(
        script_body(hosts="{1: '172.16.0.101', 2: '172.16.0.201'}"),
        "dev",
        404,
        ["hosts: 172.16.0.201 (db-1) not in web/prod", "web-101 (172.16.0.101)"],
        id="ip-outside-the-environment",
    ),
    pytest.param(
        script_body(args={"APP_NAME": "Shop"}),
        "dev",
        400,
        ["args.APP_NAME: no app called 'Shop'"],
        id="unknown-app",
    ),
    pytest.param(
        script_body(args={"GIT_URL": "git@gitlab.xxxxxxx.com:xxxxx/other.git"}),
        "dev",
        400,
        ["args.GIT_URL: 'xxxxx/other' is not the repository of app web"],
        id="another-repository",
    ),
    pytest.param(
        script_body(args={"TAG": None}),
        "dev",
        400,
        ["ref: required by git-deploy (no default); send args.TAG"],
        id="missing-tag",
    ),
    pytest.param(
        script_body(temp_id="git-deploy", args={"GIT_URL": None}),
        "dev",
        400,
        ["env: required by git-deploy (no default); send args.ENV"],
        id="missing-env",
    ),
    pytest.param(
        script_body(
            temp_id="git-deploy", args={"GIT_URL": None, "ENV": "prod", "lock_wait_s": "x"}
        ),
        "dev",
        400,
        ["lock_wait_s: must be number"],
        id="wrong-type",
    ),
    pytest.param(
        script_body(args={"approval_request_id": 1}),
        "dev",
        400,
        ["args.approval_request_id: not an argument of task template 1"],
        id="reserved-argument",
    ),
    pytest.param(
        script_body(temp_id="2"),
        "dev",
        404,
        ["hosts: 172.16.0.101 (web-101) not in web/test"],
        id="template-2-prod-host",
    ),
    pytest.param(script_body(temp_id="9"), "dev", 404, ["temp_id: no task template '9'"], id="9"),
    pytest.param(script_body(), "rep", 403, ["DEVELOPER"], id="reporter"),
]


@pytest.mark.parametrize(("body", "user", "status", "words"), REFUSED)
def test_a_refused_task_is_a_4xx_naming_the_field_and_leaves_nothing_behind(
    codo: Gateway,
    platform: Platform,
    body: dict[str, Any],
    user: str,
    status: int,
    words: list[str],
) -> None:
    """Scheduled for tomorrow with ``schedule: new`` on an approval-gated environment — the
    case that used to leave a pending approval request and an audit event behind."""
    body = {**body, "exec_time": tomorrow_local(), "schedule": "new"}
    key = f"refused-{status}-{abs(hash(json.dumps(body, sort_keys=True)))}"
    ledger_before, runs_before = ledger_counts(codo), flow_runs(platform.api_url)
    response = codo.post(
        "/api/tasks", token=codo.tokens[user], json=body, headers={"Idempotency-Key": key}
    )
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["code"] == status  # the seed's scripts: anything but 0 is a failure
    text = f"{answer['error']} ({answer.get('hint')})"
    for word in words:
        assert word in text, text
    assert "Traceback" not in response.text and "Validation failed" not in response.text
    assert ledger_counts(codo) == ledger_before
    assert flow_runs(platform.api_url) == runs_before
    for env in ("prod", "test"):
        scoped = scoped_key(user=user, deployment="git-deploy", app="web", env=env, key=key)
        assert count_runs(platform.api_url, scoped) == 0


def test_exec_time_is_local_time_and_the_approval_is_opened_for_the_run(codo: Gateway) -> None:
    local = tomorrow_local()
    body = script_body(exec_time=local, schedule="new", args={"TAG": "codo-scheduled"})
    before = ledger_counts(codo)
    response = codo.post("/api/tasks", token=codo.tokens["dev"], json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    expected = datetime.strptime(local, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    assert answer["status"] == "scheduled"
    assert datetime.fromisoformat(answer["scheduled_at"]) == expected.astimezone(UTC)
    assert answer["msg"].startswith(f"scheduled for {expected.astimezone(UTC):%Y-%m-%d %H:%M}")
    assert read_run(answer["flow_run_id"]).state_type == "SCHEDULED"
    engine = codo.engine()
    try:
        with unit_of_work(engine) as session:
            request = session.get(ApprovalRequest, answer["approval_request_id"])
            assert request is not None
            assert (request.flow_run_id, request.app, request.env, request.version) == (
                answer["flow_run_id"],
                "web",
                "prod",
                "codo-scheduled",
            )
    finally:
        engine.dispose()
    after = ledger_counts(codo)
    assert after["approval_requests"] == before["approval_requests"] + 1
    assert after["run_submissions"] == before["run_submissions"] + 1


def test_template_2_ignores_app_name_and_deploys_to_test(codo: Gateway, tmp_path: Path) -> None:
    body = script_body(temp_id="2", hosts="{1: '172.16.1.101'}", args={"APP_NAME": "whatever"})
    response = codo.post("/api/tasks", token=codo.tokens["dev"], json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["app"], answer["env"], answer["hosts"]) == ("web", "test", ["web-t1"])
