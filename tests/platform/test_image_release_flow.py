"""The image-release flow against the session platform's Prefect server, a real Docker Engine,
a real htpasswd registry and a real nginx in front: v1 then v2 with the config center's files
injected (zero failed requests under load, ledger kind image with digest and config version),
`quayside rollback`'s parameters bring v1's digest back with v1's config (a template with the
variable versions v1's release rendered it with, not today's), a container that
never answers fails the release with the old one serving, and a wrong artifact checksum is
refused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.backend import open_store
from quayside.flows.image_release import image_release
from quayside.images import containers_docker as engine
from quayside.images.image_release_target import rollback_parameters
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases
from testbed.docker_engine import DockerEngine
from testbed.image_app import APP_ADDRESS, FrontNginx, LoadLoop, free_tcp_port
from testbed.registry import RegistryPair
from testbed.release_fixtures import ledger, run_flow_fixture  # noqa: F401  (fixtures)
from tests.hosts.test_image_release_host import HOST, Pushed, app_images  # noqa: F401

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]

PASSWORD_ENV = "QS_TEST_RELEASE_REGISTRY_PASSWORD"


def _slots() -> list[str]:
    ports: set[int] = set()
    while len(ports) < 2:
        ports.add(free_tcp_port(APP_ADDRESS))
    return [f"{APP_ADDRESS}:{p}" for p in sorted(ports)]


def _inventory(
    path: Path, app: str, docker: DockerEngine, registries: RegistryPair, front: FrontNginx,
    repository: str, tmp_path: Path, **run: Any,
) -> None:  # fmt: skip
    settings: dict[str, Any] = {
        "network": "host", "init": True, "slots": _slots(), "health_path": "/health",
        "health_timeout_s": 5, "config_service": "app", "config_mount": "/www/config",
        "config_dir": str(tmp_path / "configs" / "{host}"), "traffic": front.traffic(),
    }  # fmt: skip
    settings.update(run)
    path.write_text(
        yaml.safe_dump(
            {
                "hosts": {HOST: {"address": APP_ADDRESS, "transport": "local",
                                 "docker": {"url": docker.url}}},
                "secrets": {"release_registry": {"env": PASSWORD_ENV}},
                "apps": {
                    app: {
                        "repo": "https://git.example.invalid/shop.git",
                        "deploy_root": str(tmp_path / "{host}"),
                        "image": {"build": {"artifact_path": "/app/app.war"}, "run": settings},
                        "environments": {
                            "test": {
                                "hosts": [HOST],
                                "registry": {
                                    "url": registries.source.url,
                                    "repository": repository,
                                    "username": registries.source.username,
                                    "password_secret": "release_registry",
                                },
                            }
                        },
                    }
                },
            }
        )
    )  # fmt: skip


def _save(app: str, content: str) -> int:
    store = open_store(ledger())
    address = ItemAddress(app, "test", "app", "app.properties")
    base = items.latest_version_number(store, address)
    return items.save(store, address, content, author="alice", base_version=base).version


def _config_served(front: FrontNginx) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(front.url + "config/app.properties", timeout=2) as r:
            return str(r.read().decode().strip())
    except OSError:
        return None


@dataclass
class Env:
    app: str
    images: dict[str, Pushed]


@pytest.fixture
def release_env(
    run_flow: Any,
    platform_inventory: Path,
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    monkeypatch.setenv(PASSWORD_ENV, registries.source.password)
    repository = app_images["v1"].image.split("/", 1)[1].split("@", 1)[0]
    app = f"img{secrets.token_hex(3)}"  # the session's ledger and config center are shared
    _inventory(platform_inventory, app, docker_engine, registries, image_front, repository,
               tmp_path)  # fmt: skip
    yield Env(app, app_images)
    client = docker_engine.client()
    try:
        for c in client.containers.list(all=True, filters={"label": f"quayside.app={app}"}):
            c.remove(force=True)
    finally:
        client.close()


def test_release_v1_v2_then_roll_back_to_v1_digest_and_config(
    run_flow: Any, release_env: Env, image_front: FrontNginx,
    docker_engine: DockerEngine,
) -> None:  # fmt: skip
    app, images = release_env.app, release_env.images
    assert _save(app, "config one") == 1
    first = run_flow(image_release, app, "test", "v1",
                     expected_artifact_sha256=images["v1"].war_sha256)  # fmt: skip
    assert first["hosts"] == {HOST: "succeeded"}, first
    assert first["digest"] == images["v1"].digest and first["version"] == "v1"
    assert image_front.get() == "v1" and _config_served(image_front) == "config one"

    assert _save(app, "config two") == 2
    with LoadLoop(image_front.url, rate=120) as load:
        second = run_flow(image_release, app, "test", images["v2"].digest)
    assert load.failed == 0, load.errors
    assert (
        second["hosts"] == {HOST: "succeeded"}
        and second["version"] == "sha256-" + (images["v2"].digest[7:19])
    )
    assert image_front.get() == "v2" and _config_served(image_front) == "config two"
    row = get_release(ledger(), second["release"])
    assert row.kind is ReleaseKind.image and row.status is ReleaseStatus.succeeded
    assert row.image_digest == images["v2"].digest
    assert row.details["config_files"] == {"app.properties": 2}
    assert row.details["serves"] == f"{images['v2'].digest} config {second['config_version']}"
    assert "removed" in second["cleanup"][HOST]

    # quayside rollback APP ENV: the previous digest with the config that served with it
    params = rollback_parameters(ledger(), app, "test", to=None, requested_by="bo")
    assert params["version_or_digest"] == images["v1"].digest
    assert params["config_versions"] == {"app.properties": 1}
    with LoadLoop(image_front.url, rate=120) as load:
        back = run_flow(image_release, **params)
    assert load.failed == 0, load.errors
    assert (
        back["digest"] == images["v1"].digest and back["config_version"] == first["config_version"]
    )
    assert back["version"] == "v1"  # the version the earlier release of that digest recorded
    assert image_front.get() == "v1" and _config_served(image_front) == "config one"
    row = get_release(ledger(), back["release"])
    assert row.rollback_of_id == second["release"]
    client = docker_engine.client()
    try:
        (serving,) = engine.app_containers(client, app, "test")
        assert serving.digest == images["v1"].digest
    finally:
        client.close()


def test_a_rollback_renders_the_config_with_the_variables_its_release_read(
    run_flow: Any, release_env: Env, image_front: FrontNginx,
) -> None:  # fmt: skip
    app = release_env.app
    store = open_store(ledger())
    env = EnvAddress(app, "test")
    variables.set_value(store, None, env, "GREETING", "hello one", author="alice")
    props = ItemAddress(app, "test", "app", "app.properties")
    template = "greeting={{ GREETING }}\n"
    items.save(store, props, template, author="alice", base_version=0, template=True)
    first = run_flow(image_release, app, "test", "v1")
    assert first["hosts"] == {HOST: "succeeded"}, first
    assert image_front.get() == "v1" and _config_served(image_front) == "greeting=hello one"
    row = get_release(ledger(), first["release"])
    assert row.details["config_files"] == {"app.properties": 1}
    assert row.details["config_variables"] == {"app.properties": {"GREETING": 1}}

    variables.set_value(store, None, env, "GREETING", "hello two", author="alice")
    second = run_flow(image_release, app, "test", "v2")
    assert second["hosts"] == {HOST: "succeeded"}, second
    assert image_front.get() == "v2" and _config_served(image_front) == "greeting=hello two"
    row = get_release(ledger(), second["release"])
    assert row.details["config_files"] == {"app.properties": 1}  # the same file version
    assert row.details["config_variables"] == {"app.properties": {"GREETING": 2}}

    params = rollback_parameters(ledger(), app, "test", to=None, requested_by="bo")
    assert params["config_versions"] == {"app.properties": 1}
    assert params["variable_versions"] == {"GREETING": 1}
    with LoadLoop(image_front.url, rate=120) as load:
        back = run_flow(image_release, **params)
    assert load.failed == 0, load.errors
    assert back["digest"] == release_env.images["v1"].digest
    assert back["config_version"] == first["config_version"]  # the same rendered content
    assert image_front.get() == "v1" and _config_served(image_front) == "greeting=hello one"
    row = get_release(ledger(), back["release"])
    assert row.rollback_of_id == second["release"] and row.status is ReleaseStatus.succeeded
    assert row.details["config_variables"] == {"app.properties": {"GREETING": 1}}


def test_a_container_that_never_answers_fails_the_release_and_the_old_serves(
    run_flow: Any, release_env: Env, image_front: FrontNginx,
) -> None:  # fmt: skip
    app = release_env.app
    _save(app, "config one")
    assert run_flow(image_release, app, "test", "v1")["hosts"] == {HOST: "succeeded"}
    again = run_flow(image_release, app, "test", "v1")  # the plan reads every host first
    assert again["result"] == "no change" and again["release"] is None
    with LoadLoop(image_front.url, rate=120) as load:
        with pytest.raises(Exception, match="1 of 1 host"):
            run_flow(image_release, app, "test", "v3-sick")
    assert load.failed == 0, load.errors
    assert image_front.get() == "v1"
    newest = list_releases(ledger(), app, "test", limit=1)[0]
    assert newest.kind is ReleaseKind.image and newest.status is ReleaseStatus.failed
    assert newest.version == "v3-sick"


def test_a_release_failing_on_every_host_within_the_tolerance_fails(
    run_flow: Any, release_env: Env, image_front: FrontNginx, platform_inventory: Path,
) -> None:  # fmt: skip
    app = release_env.app
    _save(app, "config one")
    run_flow(image_release, app, "test", "v1")
    doc = yaml.safe_load(platform_inventory.read_text())
    doc["apps"][app]["environments"]["test"]["failure_threshold"] = 1  # the host may fail
    platform_inventory.write_text(yaml.safe_dump(doc))
    with pytest.raises(Exception, match="every host failed"):
        run_flow(image_release, app, "test", "v3-sick")
    assert image_front.get() == "v1"
    newest = list_releases(ledger(), app, "test", limit=1)[0]
    assert newest.version == "v3-sick" and newest.status is ReleaseStatus.failed
    assert newest.summary["failed"] == 1 and newest.summary["changed"] == 0


def test_a_wrong_artifact_checksum_is_refused(
    run_flow: Any, release_env: Env, image_front: FrontNginx,
) -> None:  # fmt: skip
    app = release_env.app
    _save(app, "config one")
    with pytest.raises(Exception, match="1 of 1 host"):
        run_flow(image_release, app, "test", "v1", expected_artifact_sha256="0" * 64)
    newest = list_releases(ledger(), app, "test", limit=1)[0]
    assert newest.status is ReleaseStatus.failed
    assert "app.war has sha256" in str(newest.hosts[0].message)


@pytest.mark.parametrize("given", ["v1;touch /tmp/x", "$(id)", "sha256:zz"])
def test_shell_metacharacters_are_refused_before_anything_is_recorded(
    run_flow: Any, release_env: Env, given: str
) -> None:
    app = release_env.app
    before = len(list_releases(ledger(), app, "test", limit=500))
    with pytest.raises(Exception, match="is not a (version|sha256)"):
        run_flow(image_release, app, "test", given)
    assert len(list_releases(ledger(), app, "test", limit=500)) == before
