"""An image release's host side on a real Docker Engine, real registries and a real nginx in
front: release v1 then v2 under a load loop (zero failed requests, nginx serves v2, the old
container gone), a container that never answers (old keeps serving, new removed), an
artifact checksum mismatch (refused), a rollback to v1's digest and config version, and
names with shell metacharacters refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from quayside.errors import InputError
from quayside.executors.factory import executor_for
from quayside.images import containers_docker as engine
from quayside.images.containers_spec import ContainerSpec
from quayside.images.image_release_host import (
    ImageJob,
    finish_on_host,
    release_on_host,
    restore_on_host,
)
from quayside.inventory.image_models import DockerEndpoint, ImageRun, ImageTraffic
from quayside.inventory.models import Host
from testbed.docker_engine import DockerEngine, push_image
from testbed.image_app import APP_ADDRESS, FrontNginx, LoadLoop, build_app_image, free_tcp_port
from testbed.registry import RegistryPair

HOST = "docker-1"


@dataclass
class Pushed:
    version: str
    digest: str
    image: str
    war_sha256: str


@pytest.fixture
def app_images(
    docker_engine: DockerEngine, registries: RegistryPair, tmp_path: Path
) -> Iterator[dict[str, Pushed]]:
    """v1, v2 (serving) and v3-sick (never listens) pushed to the test registry."""
    client = docker_engine.client()
    registry = registries.source
    repository = f"{registry.host}/shop-{tmp_path.name[-12:].lower().replace('_', '-')}"
    pushed = {}
    for version, healthy in (("v1", True), ("v2", True), ("v3-sick", False)):
        war = f"war {version} {tmp_path}".encode()
        build_app_image(client, f"{repository}:{version}", version, tmp_path / version,
                        war=war, healthy=healthy)  # fmt: skip
        digest = push_image(client, repository, version, registry.username, registry.password)
        pushed[version] = Pushed(
            version, digest, f"{repository}@{digest}", hashlib.sha256(war).hexdigest()
        )
    try:
        yield pushed
    finally:
        for c in client.containers.list(all=True, filters={"label": "quayside.app=shop"}):
            c.remove(force=True)
        client.close()


def _run(front: FrontNginx, tmp_path: Path, **more: Any) -> ImageRun:
    ports = {free_tcp_port(APP_ADDRESS)}
    while len(ports) < 2:
        ports.add(free_tcp_port(APP_ADDRESS))
    slots = tuple(f"{APP_ADDRESS}:{p}" for p in sorted(ports))
    values: dict[str, Any] = {
        "network": "host",
        "init": True,  # busybox httpd as PID 1 ignores SIGTERM
        "slots": slots,
        "health_path": "/health",
        "health_timeout_s": 5,
        "config_service": "app",
        "config_mount": "/www/config",
        "config_dir": str(tmp_path / "configs" / "{host}"),
        "memory": "64m",
        "cpus": 0.5,
        "pids_limit": 64,
        "restart": "on-failure",
        "log_options": {"max-size": "1m"},
        "traffic": ImageTraffic(**front.traffic()),
    }
    values.update(more)
    return ImageRun(**values)


def _job(run: ImageRun, p: Pushed, registries: RegistryPair, config: str, **more: Any) -> ImageJob:
    values: dict[str, Any] = {
        "host": HOST, "address": APP_ADDRESS, "run": run, "app": "shop", "env": "test",
        "version": p.version, "digest": p.digest, "image": p.image,
        "config_version": hashlib.sha256(config.encode()).hexdigest(),
        "config_files": {"app.properties": 1 if "one" in config else 2},
        "rendered": (("app.properties", config),),
        "artifact_path": "/app/app.war", "artifact_sha256": p.war_sha256,
        "auth": {"username": registries.source.username,
                 "password": registries.source.password},
        "version_id": f"20260101T00000{p.version[-1]}Z",
    }  # fmt: skip
    values.update(more)
    return ImageJob(**values)


def _release(client: Any, job: ImageJob) -> tuple[Any, Any]:
    executor = executor_for(HOST, Host(address=APP_ADDRESS, transport="local"))
    try:
        report, switched = release_on_host(client, executor, job)
        if switched is not None and report.ok:
            finish_on_host(client, executor, job, switched, protected=set())
        return report, switched
    finally:
        executor.close()


def _config_served(front: FrontNginx) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(front.url + "config/app.properties", timeout=2) as r:
            return str(r.read().decode().strip())
    except OSError:
        return None


def test_v1_then_v2_under_load_zero_failures_old_container_gone_then_rollback(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    v1 = _job(run, app_images["v1"], registries, "config one")
    report, _ = _release(client, v1)
    assert report.status == "succeeded", report.message
    assert image_front.get() == "v1"
    assert _config_served(image_front) == "config one"
    with LoadLoop(image_front.url, rate=150) as load:
        v2 = _job(run, app_images["v2"], registries, "config two")
        report, switched = _release(client, v2)
    assert report.status == "succeeded", report.message
    assert "sha256" in report.message and "as built" in report.message
    assert load.failed == 0, load.errors
    assert load.sent >= 50
    assert load.seen[-1] == "v2" and "v1" in load.seen
    assert image_front.get() == "v2"
    assert _config_served(image_front) == "config two"
    names = [c.name for c in engine.app_containers(client, "shop", "test")]
    assert names == ["shop-test-v2-b"]  # v1's container removed
    container = client.containers.get("shop-test-v2-b")
    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == 64 * 1024 * 1024
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["PidsLimit"] == 64
    assert host_config["RestartPolicy"]["Name"] == "on-failure"
    assert host_config["LogConfig"]["Config"] == {"max-size": "1m"}
    assert container.labels["quayside.digest"] == app_images["v2"].digest
    mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == "/www/config")
    assert mount["RW"] is False
    # a second identical release: no change
    report, _ = _release(client, v2)
    assert report.status == "no_change"
    # rollback: v1's digest with v1's config version
    with LoadLoop(image_front.url, rate=150) as load:
        report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.status == "succeeded", report.message
    assert load.failed == 0, load.errors
    assert image_front.get() == "v1" and _config_served(image_front) == "config one"
    (serving,) = engine.app_containers(client, "shop", "test")
    assert serving.digest == app_images["v1"].digest
    assert serving.config_version == hashlib.sha256(b"config one").hexdigest()
    client.close()


def test_a_container_that_never_answers_is_removed_and_the_old_keeps_serving(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    client = docker_engine.client()
    run = _run(image_front, tmp_path, health_timeout_s=2)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.status == "succeeded", report.message
    upstream_before = (image_front.conf / "upstream.conf").read_text()
    with LoadLoop(image_front.url, rate=150) as load:
        sick = _job(run, app_images["v3-sick"], registries, "config one")
        report, switched = _release(client, sick)
    assert report.status == "failed" and report.step == "check", report.message
    assert "not ready after 2 s" in report.message
    assert "shop-test-v1-a keeps serving" in report.message
    assert switched is None
    assert load.failed == 0, load.errors
    assert set(load.seen) == {"v1"}
    assert [c.name for c in engine.app_containers(client, "shop", "test")] == ["shop-test-v1-a"]
    assert (image_front.conf / "upstream.conf").read_text() == upstream_before
    client.close()


def test_artifact_checksum_mismatch_is_refused(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.ok, report.message
    wrong = _job(run, app_images["v2"], registries, "config one", artifact_sha256="0" * 64)
    report, _ = _release(client, wrong)
    assert report.status == "failed" and report.step == "check"
    assert "/app/app.war has sha256" in report.message and "refused" in report.message
    assert image_front.get() == "v1"
    assert [c.name for c in engine.app_containers(client, "shop", "test")] == ["shop-test-v1-a"]
    client.close()


def test_restore_after_the_switch_brings_the_old_container_back(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.ok, report.message
    executor = executor_for(HOST, Host(address=APP_ADDRESS, transport="local"))
    try:
        v2 = _job(run, app_images["v2"], registries, "config two")
        report, switched = release_on_host(client, executor, v2)
        assert report.status == "succeeded" and switched is not None
        assert image_front.get() == "v2"
        with LoadLoop(image_front.url, rate=150) as load:
            note = restore_on_host(client, executor, v2, switched)
        assert "shop-test-v1-a serves again" in note
        assert load.failed == 0, load.errors
    finally:
        executor.close()
    assert image_front.get() == "v1"
    assert [c.name for c in engine.app_containers(client, "shop", "test")] == ["shop-test-v1-a"]
    client.close()


@pytest.mark.parametrize("version", ["v1;touch /tmp/pwned", "$(id)", "v1 v2", "../v1", "-v"])
def test_versions_with_shell_metacharacters_are_refused(version: str) -> None:
    with pytest.raises(InputError, match="is not a version"):
        ContainerSpec("shop", "test", version, "sha256:" + "a" * 64, "r/s@sha256:" + "a" * 64,
                      0, "none")  # fmt: skip


def test_the_engine_endpoint_is_named_when_it_does_not_answer(tmp_path: Path) -> None:
    with pytest.raises(engine.ContainerError, match="docker-9: the Docker engine at unix://"):
        engine.connect("docker-9", DockerEndpoint(url=f"unix://{tmp_path}/none.sock"), 2)
