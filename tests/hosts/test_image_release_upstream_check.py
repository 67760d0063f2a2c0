"""The image release's traffic switch proves that the NEW container answers, on a real Docker
Engine and a real nginx in front: nginx names the server of every answer
(``X-Quayside-Upstream``, from the upstream file Quayside writes), the switch wants the new
slot there; with a reload that does not take effect (the old container keeps answering 2xx
through nginx, which the URL probe alone accepted) the switch fails, the upstream file is
restored, the new container removed, and the old one served every request meanwhile."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from quayside.executors.factory import executor_for
from quayside.images import containers_docker as engine
from quayside.images.image_release_host import release_on_host, restore_on_host
from quayside.images.image_release_upstream_check import upstreams_named
from quayside.inventory.image_models import ImageTraffic
from quayside.inventory.models import Host
from testbed.docker_engine import DockerEngine
from testbed.image_app import APP_ADDRESS, FrontNginx, LoadLoop
from testbed.registry import RegistryPair
from tests.hosts.test_image_release_host import (  # noqa: F401  (app_images: a fixture)
    HOST,
    Pushed,
    _job,
    _release,
    _run,
    app_images,
)


def _named(front: FrontNginx) -> list[str]:
    with urllib.request.urlopen(front.url, timeout=2) as reply:
        return upstreams_named(reply.headers)


def test_nginx_names_the_new_container_after_a_switch(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.status == "succeeded", report.message
    assert f"nginx answers from {run.slots[0]}" in report.message
    assert _named(image_front) == [run.slots[0]]
    report, _ = _release(client, _job(run, app_images["v2"], registries, "config two"))
    assert report.status == "succeeded", report.message
    assert _named(image_front) == [run.slots[1]] and image_front.get() == "v2"
    client.close()


def test_an_old_container_still_answering_fails_the_switch_and_the_upstream_is_restored(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.status == "succeeded", report.message
    upstream_before = (image_front.conf / "upstream.conf").read_text()

    # a reload that does nothing (a wrong pid file, say): nginx keeps sending v1's slot
    # the traffic, and v1 answers the probe URL with 200 - only the header tells
    idle = run.model_copy(update={"traffic": ImageTraffic(**image_front.traffic(reload=["true"]))})
    with LoadLoop(image_front.url, rate=150) as load:
        report, switched = _release(client, _job(idle, app_images["v2"], registries, "config two"))
    assert report.status == "failed" and report.step == "switch", report.message
    assert f"nginx sent {image_front.url} to {run.slots[0]}" in report.message
    assert f"not to the new container on {run.slots[1]}" in report.message
    assert "restored the previous files" in report.message
    assert "shop-test-v1-a keeps serving" in report.message
    assert switched is None
    assert load.failed == 0, load.errors
    assert set(load.seen) == {"v1"}
    assert (image_front.conf / "upstream.conf").read_text() == upstream_before
    assert [c.name for c in engine.app_containers(client, "shop", "test")] == ["shop-test-v1-a"]
    assert _named(image_front) == [run.slots[0]] and image_front.get() == "v1"
    client.close()


def test_a_restore_to_an_upstream_file_without_the_header_still_checks_out(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    """The file a restore puts back may predate the header (an older Quayside wrote it):
    answers naming nobody pass the restore's check, and v1 serves again."""
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.status == "succeeded", report.message
    live = image_front.conf / "upstream.conf"
    old_style = "".join(
        line for line in live.read_text().splitlines(True) if "Quayside-" not in line
    )
    live.write_text(old_style)
    _reload_until_unnamed(image_front)
    executor = executor_for(HOST, Host(address=APP_ADDRESS, transport="local"))
    try:
        v2 = _job(run, app_images["v2"], registries, "config two")
        report, switched = release_on_host(client, executor, v2)
        assert report.status == "succeeded" and switched is not None, report.message
        assert _named(image_front) == [run.slots[1]]
        note = restore_on_host(client, executor, v2, switched)
    finally:
        executor.close()
    assert "shop-test-v1-a serves again" in note and "RESTORE FAILED" not in note, note
    assert live.read_text() == old_style
    assert image_front.get() == "v1"
    # the restored file names nobody: once nginx's workers of the switched config have gone
    # (on a loaded machine an old one may still answer a request or two), none is named
    _wait_unnamed(image_front)
    client.close()


def _reload_until_unnamed(front: FrontNginx) -> None:
    """The operator's reload of the old-style file (the test's setup, not Quayside's work):
    SIGHUP, and once more if nginx still names an upstream after 10 s (once in CI, a loaded
    nginx still named it 30 s after a single SIGHUP)."""
    import subprocess
    import time

    for _ in range(2):
        subprocess.run(["pkill", "-HUP", "--pidfile", str(front.base / "nginx.pid")], check=True)
        deadline = time.monotonic() + 10
        while _named(front) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _named(front):
            return
    _wait_unnamed(front)


def _wait_unnamed(front: FrontNginx) -> None:
    """Until nginx answers naming no upstream: after a reload (SIGHUP), once its master has
    read the file again and its old workers have gone (CI: more than 10 s under load)."""
    import time

    deadline = time.monotonic() + 30
    while _named(front) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _named(front) == []


def test_a_switch_whose_restore_fails_too_leaves_the_new_container_running(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    """The switch's reload does nothing (the check fails) and the restore's reload fails: nginx
    may still send the new container traffic, so it is not removed, and the report says so
    instead of "keeps serving"."""
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    assert report.status == "succeeded", report.message
    marker = tmp_path / "reloaded-once"
    once = ["sh", "-c", 'test ! -e "$1" && touch "$1"', "reload-once", str(marker)]
    broken = run.model_copy(update={"traffic": ImageTraffic(**image_front.traffic(reload=once))})
    report, switched = _release(client, _job(broken, app_images["v2"], registries, "config two"))
    assert report.status == "failed" and report.step == "switch", report.message
    assert "RESTORE FAILED" in report.message and "left running" in report.message
    assert "keeps serving" not in report.message and switched is None
    names = sorted(c.name for c in engine.app_containers(client, "shop", "test"))
    assert names == ["shop-test-v1-a", "shop-test-v2-b"]
    client.close()
