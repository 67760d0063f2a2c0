"""POST /api/runs over real HTTP (what `quayside deploy` with a token sends): the token's user
submits, parameters checked before anything is recorded, SUPER-only on_behalf_of, retries by
idempotency key."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from quayside.ledger.models import RunSubmission
from quayside.ledger.submissions import submission_of_run
from quayside.runs import read_run
from tests.platform.test_gateway_server import Gateway, gateway_fixture  # noqa: F401

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]


def run(ref: str = "qa-runs-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "deployment": "git-deploy",
        "parameters": {"app": "web", "env": "test", "ref": ref},
    }
    body.update(overrides)
    return body


def key(name: str) -> dict[str, str]:
    return {"Idempotency-Key": f"test-runs-{name}-0001"}


def _submissions(gateway: Gateway) -> int:
    engine = gateway.engine()
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(RunSubmission)) or 0)
    finally:
        engine.dispose()


def test_the_token_s_user_starts_the_run_once_per_key(gateway: Gateway) -> None:
    token = gateway.tokens["dev"]
    first = gateway.post("/api/runs", token=token, json=run(), headers=key("once"))
    assert first.status_code == 202, first.text
    again = gateway.post("/api/runs", token=token, json=run(), headers=key("once"))
    assert again.status_code == 202, again.text
    data = first.json()
    assert again.json()["flow_run_id"] == data["flow_run_id"]
    assert data["status"] == "started" and again.json()["status"] != "started"
    assert (data["requested_by"], data["submitter"]) == ("dev", "dev")
    assert (data["app"], data["env"], data["deployment"]) == ("web", "test", "git-deploy")
    flow_run = read_run(data["flow_run_id"])
    assert flow_run.parameters["requested_by"] == "dev"
    assert {"trigger:cli", "app:web", "env:test"} <= set(flow_run.tags)
    engine = gateway.engine()
    try:
        submission = submission_of_run(engine, data["flow_run_id"])
    finally:
        engine.dispose()
    assert submission is not None
    assert (submission.principal, submission.via) == ("dev", "cli")


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        (run(parameters={"app": "web", "env": "test", "ref": "x", "requested_by": "boss"}), 400,
         "requested_by"),
        (run(parameters={"app": "web", "env": "test", "ref": "x", "approval": False}), 400,
         "approval"),
        (run(parameters={"app": "web", "env": "test", "ref": "x", "shell": "id"}), 400, "shell"),
        (run(parameters={"app": "web", "env": "test"}), 400, "ref"),
        (run(parameters={"app": "nope", "env": "test", "ref": "x"}), 404, "nope"),
        (run(deployment="no-such-deployment"), 404, "no-such-deployment"),
        (run(on_behalf_of="boss"), 403, "on_behalf_of"),
        (run(extra_field=1), 422, "extra_field"),
    ],
)  # fmt: skip
def test_a_refused_run_names_the_field_and_leaves_nothing(
    gateway: Gateway, body: dict[str, Any], status: int, named: str
) -> None:
    before = _submissions(gateway)
    answer = gateway.post("/api/runs", token=gateway.tokens["dev"], json=body, headers=key("no"))
    assert answer.status_code == status, answer.text
    assert named in answer.text
    assert "flow_run_id" not in answer.json()
    assert "Traceback" not in answer.text
    assert _submissions(gateway) == before


def test_without_a_key_a_token_or_the_role_nothing_starts(gateway: Gateway) -> None:
    before = _submissions(gateway)
    no_key = gateway.post("/api/runs", token=gateway.tokens["dev"], json=run())
    assert no_key.status_code == 422 and "idempotency" in no_key.text.lower(), no_key.text
    assert gateway.post("/api/runs", json=run(), headers=key("anon")).status_code == 401
    reporter = gateway.post("/api/runs", token=gateway.tokens["rep"], json=run(), headers=key("r"))
    assert reporter.status_code == 403 and "DEVELOPER" in reporter.text, reporter.text
    assert _submissions(gateway) == before


def test_a_super_user_may_start_it_on_behalf_of_someone(gateway: Gateway) -> None:
    from quayside.auth import service

    engine = gateway.engine()
    try:
        if service.users.find_user(engine, "root") is None:
            service.create_user(engine, "root", is_super=True)
        token = service.create_token(engine, "root")
    finally:
        engine.dispose()
    answer = gateway.post(
        "/api/runs", token=token, json=run("qa-runs-2", on_behalf_of="dev"), headers=key("su")
    )
    assert answer.status_code == 202, answer.text
    data = answer.json()
    assert (data["requested_by"], data["submitter"]) == ("dev", "root")
    flow_run = read_run(data["flow_run_id"])
    assert flow_run.parameters["requested_by"] == "dev"
    assert "on-behalf-of:dev" in flow_run.tags
    bad = gateway.post(
        "/api/runs", token=token, json=run(on_behalf_of="a b;id"), headers=key("su-bad")
    )
    assert bad.status_code == 400 and "on_behalf_of" in bad.text, bad.text


def test_the_cli_s_client_starts_a_run_and_says_the_gateway_s_refusal(gateway: Gateway) -> None:
    """quayside.cli.gateway_runs against the real gateway: the run and who it is for; a
    refusal is the gateway's one line and hint; nothing listening -> None (the CLI then checks
    the token against the ledger itself)."""
    from quayside.cli.gateway_runs import GatewayRefused, start_via_gateway

    params = {"app": "web", "env": "test", "ref": "qa-runs-3"}
    started = start_via_gateway(gateway.url, gateway.tokens["dev"], "git-deploy", params, None)
    assert started is not None
    handle, requester = started
    gateway.runs.append(handle.id)
    assert handle.created and handle.ui_url.endswith(handle.id)
    assert (requester.name, requester.principal, requester.on_behalf_of) == ("dev", "dev", None)
    with pytest.raises(GatewayRefused) as refused:
        start_via_gateway(gateway.url, gateway.tokens["rep"], "git-deploy", params, None)
    assert "DEVELOPER" in str(refused.value) and gateway.tokens["rep"] not in str(refused.value)
    with pytest.raises(GatewayRefused) as foreign:
        start_via_gateway(gateway.url, gateway.tokens["dev"], "git-deploy", params, "boss")
    assert "--as is for SUPER users" in str(foreign.value) and foreign.value.hint
    assert start_via_gateway("http://127.0.0.1:1", gateway.tokens["dev"], "git-deploy", params,
                             None) is None  # fmt: skip
