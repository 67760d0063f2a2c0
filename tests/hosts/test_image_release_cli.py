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
