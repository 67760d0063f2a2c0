"""The image-release flow on a Docker host whose engine is reached over ``tcp://`` (the real
engine behind a loopback relay, issue 18): v1 released through it; then the endpoint goes
away and a release of v2 is refused at the plan, naming the host and the endpoint, before
anything is recorded or touched (no ledger row, no container, nginx still on v1)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from quayside.flows.image_release import image_release
from quayside.images import containers_docker as engine
from quayside.ledger.release_queries import list_releases
from testbed.docker_engine import DockerEngine
from testbed.docker_remote import start_tcp_relay
from testbed.image_app import FrontNginx
from testbed.registry import RegistryPair
from testbed.release_fixtures import ledger, run_flow_fixture  # noqa: F401  (fixtures)
from tests.hosts.test_image_release_host import HOST, Pushed, app_images  # noqa: F401
from tests.platform.test_image_release_flow import PASSWORD_ENV, _inventory, _save

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]


def test_a_release_over_tcp_then_the_endpoint_gone_is_refused_at_the_plan(
    run_flow: Any,
    platform_inventory: Path,
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    socat = shutil.which("socat")
    assert socat is not None, "install the Debian package socat"
    monkeypatch.setenv(PASSWORD_ENV, registries.source.password)
    repository = app_images["v1"].image.split("/", 1)[1].split("@", 1)[0]
    app = f"tcp{tmp_path.name[-6:].lower().replace('_', '')}"
    relay, url = start_tcp_relay(socat, docker_engine.url, tmp_path)
    try:
        endpoint = SimpleNamespace(url=url)  # the inventory's docker.url: the relay
        _inventory(platform_inventory, app, endpoint, registries, image_front,  # type: ignore[arg-type]
                   repository, tmp_path)  # fmt: skip
        _save(app, "config one")
        first = run_flow(image_release, app, "test", "v1")
        assert first["hosts"] == {HOST: "succeeded"}, first
        assert image_front.get() == "v1"
        recorded = len(list_releases(ledger(), app, "test", limit=500))
        upstream = (image_front.conf / "upstream.conf").read_text()

        relay.stop()
        with pytest.raises(Exception, match="cannot be reached; nothing changed") as caught:
            run_flow(image_release, app, "test", "v2")
        text = str(caught.value)  # one line per host: host [connect]: why
        assert f"{HOST} [connect]: {HOST}: the Docker engine at {url} does not answer" in text
        assert len(list_releases(ledger(), app, "test", limit=500)) == recorded
        assert (image_front.conf / "upstream.conf").read_text() == upstream
        assert image_front.get() == "v1"
        client = docker_engine.client()
        try:
            (only,) = engine.app_containers(client, app, "test")
            assert only.version == "v1" and only.running
        finally:
            client.close()
    finally:
        relay.stop()
        client = docker_engine.client()
        try:
            for c in client.containers.list(all=True, filters={"label": f"quayside.app={app}"}):
                c.remove(force=True)
        finally:
            client.close()
