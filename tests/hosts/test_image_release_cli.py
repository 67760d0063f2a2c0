"""``quayside ps``, ``logs`` and ``restart`` for an image app, against a real Docker Engine
with a container released by the image release's host code, run the way a user types them
(the CLI, an inventory file, no token: the platform operator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from quayside.cli.app import app
from quayside.cli.main import app as _registered  # noqa: F401  (registers the commands)
from testbed.docker_engine import DockerEngine
from testbed.image_app import APP_ADDRESS, FrontNginx
from testbed.registry import RegistryPair
from tests.hosts.test_image_release_host import (  # noqa: F401  (fixture)
    HOST,
    Pushed,
    _job,
    _release,
    _run,
    app_images,
)


def _inventory(path: Path, docker_url: str, run: Any, registries: RegistryPair) -> None:
    run_settings = run.model_dump(mode="json", exclude_none=True)
    path.write_text(
        yaml.safe_dump(
            {
                "hosts": {
                    HOST: {"address": APP_ADDRESS, "transport": "local",
                           "docker": {"url": docker_url}},
                },
                "apps": {
                    "shop": {
                        "repo": "https://git.example.invalid/shop.git",
                        "deploy_root": str(path.parent / "{host}"),
                        "image": {"run": run_settings},
                        "environments": {
                            "test": {
                                "hosts": [HOST],
                                "registry": {"url": registries.source.url,
                                             "repository": "shop"},
                            }
                        },
                    }
                },
            }
        )
    )  # fmt: skip


def test_ps_logs_restart_of_the_serving_container(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.ok, report.message
    assert image_front.get() == "v1"
    inventory = tmp_path / "quayside.yaml"
    _inventory(inventory, docker_engine.url, run, registries)
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(inventory))
    monkeypatch.setenv("QUAYSIDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QUAYSIDE_TOKEN", raising=False)
    runner = CliRunner()

    listed = runner.invoke(app, ["ps", "shop", "test"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "shop-test-v1-a" in line)
    assert "*" in row and HOST in row and "v1" in row and "running" in row
    assert app_images["v1"].digest[:19] in row

    logged = runner.invoke(app, ["logs", "shop", "test", "--tail", "20"])
    assert logged.exit_code == 0, logged.output
    assert f"{HOST}: 127.0.0.1:" in logged.output and "response:200" in logged.output

    restarted = runner.invoke(app, ["restart", "shop", "test"])
    assert restarted.exit_code == 0, restarted.output
    assert f"{HOST}: shop-test-v1-a restarted; running" in restarted.output
    assert image_front.get() == "v1"

    refused = runner.invoke(app, ["ps", "shop", "nope"])
    assert refused.exit_code != 0  # main() turns it into one line naming the environment
    assert "has no environment 'nope'" in str(refused.exception)
    client.close()


def test_reconcile_reads_the_digest_and_config_the_upstream_points_at(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    from quayside.inventory import load_inventory
    from quayside.inventory.resolve import resolve_target
    from quayside.ledger.models import Release, ReleaseKind
    from quayside.release.served import SERVED_BY

    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    inventory = tmp_path / "quayside.yaml"
    _inventory(inventory, docker_engine.url, run, registries)
    target = resolve_target(load_inventory(inventory), "shop", "test")
    served_by = SERVED_BY[ReleaseKind.image]
    (nothing,) = served_by.read(target, Release())
    assert (nothing.host, nothing.current, nothing.error) == (HOST, None, None)
    for version, config in (("v1", "config one"), ("v2", "config two")):
        job = _job(run, app_images[version], registries, config)
        report, _ = _release(client, job)
        assert report.ok, report.message
        (found,) = served_by.read(target, Release())
        assert found.current == f"{job.digest} config {job.config_version}"
    client.close()


def test_pruning_keeps_the_digests_kept_releases_reference(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
) -> None:
    from quayside.images.containers_docker import prune_images

    client = docker_engine.client()
    repository = app_images["v1"].image.split("@", 1)[0]
    digests = {p.digest for p in app_images.values()}
    auth = {"username": registries.source.username, "password": registries.source.password}
    for p in app_images.values():  # pulled by digest, as a release pulls
        client.api.pull(repository, tag=p.digest, auth_config=auth)
    oldest = app_images["v1"].digest
    removed = prune_images(client, repository, keep=1, protected={oldest}, in_use=set())
    assert oldest not in removed
    assert set(removed) == digests - {oldest, app_images["v3-sick"].digest}
    left = {d.split("@", 1)[1] for i in client.images.list(name=repository)
            for d in i.attrs.get("RepoDigests") or []}  # fmt: skip
    assert oldest in left and app_images["v3-sick"].digest in left
    client.close()


def test_gateway_lists_logs_and_restarts_for_the_app_s_users_only(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from quayside.auth import service
    from quayside.gateway.app import create_app
    from quayside.gateway.config import GatewayConfig
    from quayside.ledger.db import make_engine, migrate
    from quayside.settings import Settings

    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.ok, report.message
    client.close()
    inventory = tmp_path / "quayside.yaml"
    _inventory(inventory, docker_engine.url, run, registries)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        for name in ("dev", "reporter"):
            service.create_user(engine, name)
        service.grant_role(engine, "dev", "DEVELOPER", space="default")
        service.grant_role(engine, "reporter", "REPORTER", space="default")
        tokens = {name: service.create_token(engine, name) for name in ("dev", "reporter")}
    finally:
        engine.dispose()
    settings = Settings(
        home=tmp_path, database_url=url, inventory_path=inventory, gateway_host="127.0.0.1",
        gateway_port=1, prefect_host="127.0.0.1", prefect_port=1,
    )  # fmt: skip
    http = TestClient(create_app(settings, GatewayConfig()))
    dev = {"Authorization": f"Bearer {tokens['dev']}"}

    listed = http.get("/api/apps/shop/test/containers", headers=dev)
    assert listed.status_code == 200, listed.text
    (row,) = listed.json()["containers"]
    assert row["name"] == "shop-test-v1-a" and row["serving"] is True
    assert row["digest"] == app_images["v1"].digest and row["host"] == HOST

    logged = http.get("/api/apps/shop/test/logs?tail=5", headers=dev)
    assert logged.status_code == 200 and f"{HOST}: 127.0.0.1:" in logged.text

    restarted = http.post("/api/apps/shop/test/restart", headers=dev)
    assert restarted.status_code == 200, restarted.text
    assert restarted.json()["ok"] is True
    assert restarted.json()["hosts"][HOST]["container"] == "shop-test-v1-a"
    assert image_front.get() == "v1"

    reporter = {"Authorization": f"Bearer {tokens['reporter']}"}
    refused = http.post("/api/apps/shop/test/restart", headers=reporter)
    assert refused.status_code == 403 and "DEVELOPER" in refused.text
    assert http.get("/api/apps/shop/test/containers").status_code == 401
    assert http.get("/api/apps/shop/nope/containers", headers=dev).status_code == 404
