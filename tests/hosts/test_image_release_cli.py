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
