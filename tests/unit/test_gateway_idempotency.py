"""The review's idempotency attack against the real gateway app (security review, issue 13
item 7): bob sends ``POST /api/tasks`` for one app/env with the Idempotency-Key ann used for
another; he must get a run of his own, not ann's run reported as started.

Only Prefect is replaced, by a stand-in with Prefect's idempotency (one run per deployment and
key); the gateway, the ledger, roles and the inventory are real."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from quayside.auth import service
from quayside.deployments.catalogue import by_name
from quayside.gateway import triggering
from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig
from quayside.ledger.db import make_engine
from quayside.runs import RunHandle
from quayside.settings import Settings

INVENTORY = """
hosts:
  a-1: {address: 127.0.0.98}
  b-1: {address: 127.0.0.99}
apps:
  alpha:
    space: team
    environments:
      test: {hosts: [a-1]}
  beta:
    space: team
    environments:
      prod:
        hosts: [b-1]
        approval: {required: 1, role: MASTER}
"""
GIT_DEPLOY_PARAMETERS = frozenset(
    {"app", "env", "ref", "hosts", "batch", "dry_run", "requested_by", "approval", "lock_wait_s"}
)


class FakePrefect:
    """Prefect's create-from-deployment idempotency: one run per (deployment, key)."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], RunHandle] = {}
        self.parameters: dict[str, dict[str, Any]] = {}

    def start_run(
        self, deployment: str, parameters: dict[str, Any], *, idempotency_key: str, **_: Any
    ) -> RunHandle:
        found = self.runs.get((deployment, idempotency_key))
        if found is not None:
            return found
        run_id = str(uuid.uuid4())
        handle = RunHandle(run_id, run_id[:8], deployment, f"http://ui/runs/{run_id}", None)
        self.runs[(deployment, idempotency_key)] = handle
        self.parameters[run_id] = dict(parameters)
        return handle


@pytest.fixture
def prefect(monkeypatch: pytest.MonkeyPatch) -> FakePrefect:
    fake = FakePrefect()
    monkeypatch.setattr(triggering, "start_run", fake.start_run)
    return fake


def gateway_client(
    tmp_path: Path, config: GatewayConfig | None = None
) -> tuple[TestClient, dict[str, str]]:
    """The real gateway app on a fresh ledger with ann and bob (MASTER on space team, DingTalk
    ids ``ann-staff`` and ``bob-staff``) and a token each; the git-deploy schema is known, so no
    Prefect is asked for it."""
    (tmp_path / "quayside.yaml").write_text(INVENTORY)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    from quayside.ledger.db import migrate

    migrate(url)
    engine = make_engine(url)
    try:
        for name in ("ann", "bob"):
            service.create_user(engine, name, dingtalk_id=f"{name}-staff")
            service.grant_role(engine, name, "MASTER", space="team")
        tokens = {name: service.create_token(engine, name) for name in ("ann", "bob")}
    finally:
        engine.dispose()
    settings = Settings(
        home=tmp_path,
        database_url=url,
        inventory_path=tmp_path / "quayside.yaml",
        gateway_host="127.0.0.1",
        gateway_port=1,
        prefect_host="127.0.0.1",
        prefect_port=1,
    )
    app = create_app(settings, config or GatewayConfig())
    spec = by_name("git-deploy")
    schema = {
        "type": "object",
        "properties": {name: {} for name in GIT_DEPLOY_PARAMETERS},
        "required": ["app", "env", "ref"],
    }
    app.state.context._parameters[spec.full_name] = (time.monotonic(), schema)
    return TestClient(app), tokens


@pytest.fixture
def client(tmp_path: Path, prefect: FakePrefect) -> tuple[TestClient, dict[str, str]]:
    return gateway_client(tmp_path)


def deploy(
    client: TestClient, token: str, app: str, env: str, key: str = "shared-key-0001"
) -> httpx.Response:
    body = {
        "task_name": "deploy",
        "temp_id": "git-deploy",
        "schedule": "ready",
        "args": json.dumps({"app": app, "env": env, "ref": "v1"}),
        "details": "",
    }
    return client.post(
        "/api/tasks",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


def test_another_users_key_for_another_app_env_starts_another_run(
    client: tuple[TestClient, dict[str, str]], prefect: FakePrefect
) -> None:
    http, tokens = client
    ann = deploy(http, tokens["ann"], "alpha", "test")
    assert ann.status_code == 202, ann.text
    bob = deploy(http, tokens["bob"], "beta", "prod")  # ann's key
    assert bob.status_code == 202, bob.text
    assert bob.json()["flow_run_id"] != ann.json()["flow_run_id"]
    started = prefect.parameters[bob.json()["flow_run_id"]]
    assert (started["app"], started["env"], started["requested_by"]) == ("beta", "prod", "bob")
    # ann's key for ann's very app and env, from bob: his own run as well
    same_place = deploy(http, tokens["bob"], "alpha", "test")
    assert same_place.status_code == 202, same_place.text
    ids = {r.json()["flow_run_id"] for r in (ann, bob, same_place)}
    assert len(ids) == len(prefect.runs) == 3


def test_a_retry_with_the_same_key_still_finds_its_run(
    client: tuple[TestClient, dict[str, str]], prefect: FakePrefect
) -> None:
    http, tokens = client
    first = deploy(http, tokens["ann"], "alpha", "test")
    again = deploy(http, tokens["ann"], "alpha", "test")
    assert first.status_code == again.status_code == 202
    assert again.json()["flow_run_id"] == first.json()["flow_run_id"]
    assert len(prefect.runs) == 1
