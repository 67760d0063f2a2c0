"""``GET /api/releases`` over real HTTP (uvicorn on loopback, ledger on SQLite and PostgreSQL):
each caller sees the apps their role grants, newest first, paged with ``before``; bad
parameters are a 400 naming the parameter, an unknown app a 404 naming it, no token a 401;
and the page is one SQL statement however many releases and hosts it holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, event

from quayside.auth import service
from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig
from quayside.gateway.release_rows import release_page
from quayside.ledger import approvals, releases
from quayside.ledger.db import make_engine
from quayside.ledger.models import Decision, ReleaseStatus
from quayside.settings import Settings
from testbed.postgres import free_port

INVENTORY = """\
apps:
  shop:
    space: retail
    environments:
      test: {}
      prod: {}
  till:
    space: retail
    environments:
      prod: {}
  billing:
    space: finance
    environments:
      prod: {}
"""
SHOP_RELEASES = 25


@dataclass
class Gateway:
    url: str
    tokens: dict[str, str]
    ids: dict[str, list[int]]

    def get(self, who: str | None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.get(f"{self.url}/api/releases", params=params, headers=headers, timeout=30)


def _ledger(engine: Engine) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Users: dev (DEVELOPER of space retail), clerk (REPORTER of project till only), payer
    (DEVELOPER of finance), root (SUPER). Releases: shop/test, shop/prod (the last approved
    by root, with host outcomes), till/prod, billing/prod."""
    service.create_user(engine, "dev")
    service.grant_role(engine, "dev", "DEVELOPER", space="retail")
    service.create_user(engine, "clerk")
    service.grant_role(engine, "clerk", "REPORTER", space="retail", project="till")
    service.create_user(engine, "payer")
    service.grant_role(engine, "payer", "DEVELOPER", space="finance")
    service.create_user(engine, "root", is_super=True)
    tokens = {n: service.create_token(engine, n) for n in ("dev", "clerk", "payer", "root")}
    ids: dict[str, list[int]] = {"shop": [], "till": [], "billing": []}
    for i in range(SHOP_RELEASES):
        env = "test" if i % 2 else "prod"
        ids["shop"].append(_release(engine, "shop", env, f"v{i}", run=f"run-shop-{i}").id)
    for app in ("till", "billing"):
        ids[app].append(_release(engine, app, "prod", "v1", run=f"run-{app}").id)
    last = ids["shop"][-1]
    for host, status in (("web-1", "succeeded"), ("web-2", "succeeded"), ("web-3", "failed")):
        releases.record_host_outcome(engine, last, host, status)
    request = approvals.create_request(
        engine, "shop", "prod", summary="v24", requested_by="dev", release_id=last
    )
    approvals.record_decision(engine, request.id, "root", Decision.approve)
    approvals.resolve(engine, request.id)
    releases.finish_release(engine, last, ReleaseStatus.failed)
    return tokens, ids


def _release(engine: Engine, app: str, env: str, version: str, *, run: str) -> Any:
    release = releases.start_release(
        engine, app, env, "deploy", requested_by="dev", version=version, ref=version,
        flow_run_id=run,
    )  # fmt: skip
    releases.mark_running(engine, release.id)
    return release


@pytest.fixture
def gateway(tmp_path: Path, ledger_url: str) -> Iterator[Gateway]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "quayside.yaml").write_text(INVENTORY)
    engine = make_engine(ledger_url)
    try:
        tokens, ids = _ledger(engine)
    finally:
        engine.dispose()
    settings = Settings(
        home=home,
        database_url=ledger_url,
        inventory_path=home / "quayside.yaml",
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        prefect_host="127.0.0.1",
        prefect_port=1,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, GatewayConfig(auth_failures=10_000)),
            host="127.0.0.1",
            port=settings.gateway_port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "gateway did not start"
        time.sleep(0.05)
    try:
        yield Gateway(settings.gateway_url, tokens, ids)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def apps_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {r["app"] for r in response.json()["releases"]}


def test_each_caller_sees_the_apps_their_role_grants(gateway: Gateway) -> None:
    everything = {"shop", "till", "billing"}
    assert apps_of(gateway.get("dev", limit=200)) == {"shop", "till"}
    assert apps_of(gateway.get("clerk", limit=200)) == {"till"}
    assert apps_of(gateway.get("payer", limit=200)) == {"billing"}
    assert apps_of(gateway.get("root", limit=200)) == everything
    refused = gateway.get("payer", app="shop")
    assert refused.status_code == 403
    assert "payer needs REPORTER" in refused.json()["error"]
    assert "shop" in refused.json()["error"]
    assert gateway.get("clerk", app="shop").status_code == 403  # a project grant is not the space
    assert apps_of(gateway.get("clerk", app="till")) == {"till"}


def test_a_release_as_listed(gateway: Gateway) -> None:
    response = gateway.get("dev", app="shop", env="prod", limit=1)
    assert response.status_code == 200, response.text
    (newest,) = response.json()["releases"]
    assert newest["id"] == gateway.ids["shop"][-1]
    assert newest | {"created_at": None, "started_at": None, "finished_at": None} == {
        "id": gateway.ids["shop"][-1],
        "app": "shop",
        "env": "prod",
        "kind": "deploy",
        "version": "v24",
        "ref": "v24",
        "commit_sha": None,
        "status": "failed",
        "requested_by": "dev",
        "approved_by": ["root"],
        "created_at": None,
        "started_at": None,
        "finished_at": None,
        "hosts": {"failed": 1, "succeeded": 2},
        "flow_run_id": "run-shop-24",
        "run_url": newest["run_url"],
    }
    assert newest["run_url"].endswith("/runs/flow-run/run-shop-24")
    assert newest["created_at"] <= newest["started_at"] <= newest["finished_at"]


def test_newest_first_and_paged_with_before(gateway: Gateway) -> None:
    seen: list[int] = []
    before: int | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"app": "shop", "limit": 10}
        if before is not None:
            params["before"] = before
        body = gateway.get("dev", **params).json()
        seen += [r["id"] for r in body["releases"]]
        pages += 1
        before = body["next_before"]
        if before is None:
            break
    assert pages == 3
    assert seen == sorted(gateway.ids["shop"], reverse=True)
    default = gateway.get("dev").json()["releases"]
    assert len(default) == 20
    prod = gateway.get("dev", app="shop", env="prod", status="running", limit=200).json()
    assert {(r["env"], r["status"]) for r in prod["releases"]} == {("prod", "running")}
    assert len(prod["releases"]) == SHOP_RELEASES // 2  # 13 prod releases, the last failed


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "-3"}, "before"),
        ({"before": "x1"}, "before"),
        ({"status": "done"}, "status"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    gateway: Gateway, params: dict[str, str], field: str
) -> None:
    response = gateway.get("dev", **params)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}: ")


def test_unknown_app_or_environment_is_404_naming_it(gateway: Gateway) -> None:
    response = gateway.get("dev", app="nosuch")
    assert response.status_code == 404
    assert "'nosuch'" in response.json()["error"]
    response = gateway.get("dev", app="till", env="test")
    assert response.status_code == 404
    assert response.json()["error"].startswith("env: 'test'")
    assert "prod" in response.json()["hint"]
    assert gateway.get("payer", app="till", env="test").status_code == 403  # role first


def test_without_a_valid_token_is_401(gateway: Gateway) -> None:
    assert gateway.get(None).status_code == 401
    gateway.tokens["bad"] = "qs_000000000000_" + "0" * 64
    response = gateway.get("bad")
    assert response.status_code == 401
    assert "token" in response.json()["error"]


def test_a_page_is_one_statement(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    try:
        _ledger(engine)
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2].split()[0]))
        rows = release_page(engine, apps=["shop", "till"], limit=200)
    finally:
        engine.dispose()
    assert len(rows) == SHOP_RELEASES + 1
    assert [s for s in statements if s.upper() == "SELECT"] == ["SELECT"]
    assert [r.app for r in rows[:2]] == ["till", "shop"]  # till's release came after shop's
    assert rows[1].host_outcomes == {"failed": 1, "succeeded": 2}
    assert rows[1].approved_by == ("root",)


def test_a_release_covered_by_a_promotion_s_approval_lists_those_approvers(
    gateway: Gateway, ledger_url: str
) -> None:
    """A promotion's image release has no approval request of its own: the promote gate's
    approval covered it (``details["approval"]``), and its approvers are listed."""
    from quayside.ledger.db import make_engine
    from quayside.ledger.release_details import add_release_detail

    engine = make_engine(ledger_url)
    try:
        covered = _release(engine, "billing", "prod", "v2", run="run-billing-2")
        covering = {"request": 1, "gate": "promote", "approvers": ["root"], "for_release": 1}
        add_release_detail(engine, covered.id, "approval", covering)
    finally:
        engine.dispose()
    (newest,) = gateway.get("payer", app="billing", limit=1).json()["releases"]
    assert (newest["id"], newest["approved_by"]) == (covered.id, ["root"])
