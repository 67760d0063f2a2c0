"""POST /api/tasks over real HTTP: auth negatives, validation, literal strings never evaluated,
idempotent starts and exec_time → a Prefect Scheduled run at that time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from quayside.runs import read_run
from tests.platform.test_gateway_server import FIXTURES, Gateway, gateway_fixture  # noqa: F401

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]


def task(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task_name": "deploy via the task API",
        "temp_id": "git-deploy",
        "schedule": "ready",
        "args": "{'APP_NAME': 'web', 'ENV': 'test', 'TAG': 'qa-task-1'}",
        "details": "test",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("token_name", "header"),
    [
        (None, None),
        ("expired", "Bearer"),
        ("revoked", "Bearer"),
        ("garbage", "Bearer"),
        ("dev", "Basic"),
    ],
)
def test_task_refused_without_a_valid_token(
    gateway: Gateway, token_name: str | None, header: str | None
) -> None:
    headers = {}
    if token_name is not None:
        token = gateway.tokens.get(token_name, "qs_000000000000_" + "0" * 64)
        headers["Authorization"] = f"{header} {token}"
    response = gateway.post("/api/tasks", json=task(), headers=headers)
    assert response.status_code == 401, response.text
    assert "token" in response.json()["error"].lower()
    for secret in gateway.tokens.values():
        assert secret not in response.text


def test_reporter_may_not_submit(gateway: Gateway) -> None:
    response = gateway.post("/api/tasks", token=gateway.tokens["rep"], json=task())
    assert response.status_code == 403
    assert "DEVELOPER" in response.json()["error"]


def test_unknown_temp_id_and_alias(gateway: Gateway) -> None:
    for temp_id in ("no-such-flow", "42"):
        response = gateway.post(
            "/api/tasks", token=gateway.tokens["dev"], json=task(temp_id=temp_id)
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"].startswith("temp_id:")


def test_unknown_fields_and_bad_values_are_listed(gateway: Gateway) -> None:
    response = gateway.post(
        "/api/tasks",
        token=gateway.tokens["dev"],
        json=task(colour="blue", schedule="later", exec_time="tomorrow-ish"),
    )
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert "colour: unknown field" in problems
    assert any(p.startswith("schedule: ") for p in problems)
    assert any(p.startswith("exec_time: ") for p in problems)


def test_unknown_argument_for_the_deployment_is_refused(gateway: Gateway) -> None:
    response = gateway.post(
        "/api/tasks",
        token=gateway.tokens["dev"],
        json=task(args={"app": "web", "env": "test", "ref": "qa-1", "colour": "blue"}),
    )
    assert response.status_code == 400
    assert "colour: not a parameter of git-deploy" in response.json()["error"]


def test_malicious_literal_is_rejected_and_never_evaluated(
    gateway: Gateway, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    for field in ("args", "hosts"):
        evil = f"{{'a': __import__('os').system('touch {marker}')}}"
        response = gateway.post(
            "/api/tasks", token=gateway.tokens["dev"], json=task(**{field: evil})
        )
        assert response.status_code == 422, response.text
        assert response.json()["problems"][0].startswith(f"{field}: ")
        assert str(marker) not in response.text
    assert not marker.exists()


def test_seed_script_body_is_accepted_and_retries_start_one_run(gateway: Gateway) -> None:
    """The seed's script body (Python-literal args and hosts), sent twice with the same
    Idempotency-Key, starts one run."""
    seed = json.loads((FIXTURES / "tasks" / "seed_script.json").read_text(encoding="utf-8"))
    body = seed.get("body", seed)
    body = {k: v for k, v in body.items() if not k.startswith("_")}
    body.update(temp_id="1", args="{'APP_NAME': 'web', 'ENV': 'test', 'TAG': 'qa-seed'}")
    body.update(exec_time="", schedule="ready")
    body.pop("hosts")  # the seed's IP addresses name no host of this inventory
    headers = {"Idempotency-Key": "test-task-retry-0001"}
    first = gateway.post("/api/tasks", token=gateway.tokens["dev"], json=body, headers=headers)
    assert first.status_code == 202, first.text
    second = gateway.post("/api/tasks", token=gateway.tokens["dev"], json=body, headers=headers)
    assert second.status_code == 202
    assert first.json()["flow_run_id"] == second.json()["flow_run_id"]
    data = first.json()
    assert data["deployment"] == "git-deploy"
    assert data["status"] == "started"
    assert data["ui_url"].endswith(data["flow_run_id"])
    run = read_run(data["flow_run_id"])
    assert run.parameters["requested_by"] == "dev"  # the token's user, not the body
    assert "trigger:task-api" in run.tags


def test_exec_time_becomes_a_scheduled_run_at_that_local_time(gateway: Gateway) -> None:
    zone = ZoneInfo("Asia/Shanghai")  # the inventory's timezone
    local = (datetime.now(zone) + timedelta(days=1)).replace(microsecond=0, tzinfo=None)
    response = gateway.post(
        "/api/tasks",
        token=gateway.tokens["dev"],
        json=task(exec_time=local.strftime("%Y-%m-%d %H:%M:%S")),
    )
    assert response.status_code == 202, response.text
    data = response.json()
    expected = local.replace(tzinfo=zone).astimezone(UTC)
    assert data["status"] == "scheduled"
    assert datetime.fromisoformat(data["scheduled_at"]) == expected
    run = read_run(data["flow_run_id"])
    assert run.state_type == "SCHEDULED"


def test_hosts_by_address_are_the_environments_hosts(gateway: Gateway) -> None:
    """The older platform names hosts by IP address ({1: '127.0.0.98'}): the run gets the
    inventory host's name; an address of another environment's host is refused at once."""
    response = gateway.post(
        "/api/tasks",
        token=gateway.tokens["dev"],
        json=task(
            args="{'APP_NAME': 'Web', 'ENV': 'test', 'TAG': 'qa-by-ip'}", hosts="{1: '127.0.0.98'}"
        ),
    )
    assert response.status_code == 202, response.text
    assert response.json()["hosts"] == ["w-1"]
    assert read_run(response.json()["flow_run_id"]).parameters["hosts"] == ["w-1"]
    refused = gateway.post(
        "/api/tasks",
        token=gateway.tokens["dev"],
        json=task(
            args="{'APP_NAME': 'web', 'ENV': 'test', 'TAG': 'qa-by-ip-2'}",
            hosts="{1: '127.0.0.99'}",
        ),
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"] == "hosts: 127.0.0.99 (b-web) not in web/test"
    assert refused.json()["hint"] == "hosts of web/test: w-1 (127.0.0.98)"
