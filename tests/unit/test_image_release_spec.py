"""Image release as data: the container's name, labels and create arguments from image.run,
the slot a new container takes, nginx's upstream file, the config service the switch is
published through, and the ledger reads around a release (rollback target, kept digests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from quayside.errors import InputError, NotFoundError
from quayside.images.containers_spec import (
    ContainerSpec,
    check_digest,
    create_arguments,
    other_slot,
    probe_url,
    slot_of,
)
from quayside.images.image_release_host import config_tar, write_config_argv
from quayside.images.image_release_target import protected_digests, rollback_parameters
from quayside.images.traffic_upstream import slot_in_upstream, traffic_service, upstream_text
from quayside.inventory.image_models import ImageRun, ImageTraffic
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, start_release

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def spec(slot: int = 0, version: str = "v1.2.0", **more: object) -> ContainerSpec:
    values: dict[str, object] = {
        "app": "shop", "env": "prod", "version": version, "digest": D1,
        "image": f"reg:5000/shop@{D1}", "slot": slot, "config_version": "c" * 64,
        "config_files": {"app.properties": 3},
    }  # fmt: skip
    values.update(more)
    return ContainerSpec(**values)  # type: ignore[arg-type]


def test_name_and_labels_say_what_runs() -> None:
    s = spec(slot=1, version="v1.2.0+build.7")
    assert s.name == "shop-prod-v1.2.0_build.7-b"
    assert s.labels() == {
        "quayside.app": "shop",
        "quayside.env": "prod",
        "quayside.version": "v1.2.0+build.7",
        "quayside.digest": D1,
        "quayside.config": "c" * 64,
        "quayside.config-files": json.dumps({"app.properties": 3}),
        "quayside.slot": "b",
    }
    assert slot_of(s.labels()) == 1
    assert s.serves == f"{D1} config {'c' * 64}"


def test_the_new_container_takes_the_slot_the_serving_one_does_not_hold() -> None:
    assert other_slot(None) == 0
    assert other_slot(0) == 1
    assert other_slot(1) == 0


def test_create_arguments_bridge_network_with_limits_restart_logs_and_config() -> None:
    run = ImageRun(
        port=8080, env={"JAVA_OPTS": "-Xmx256m"}, config_service="app", config_mount="/etc/shop",
        memory="512m", cpus=1.5, pids_limit=200, restart="on-failure", log_driver="json-file",
        log_options={"max-size": "10m", "max-file": "3"}, config_dir="/srv/qs/{host}",
    )  # fmt: skip
    args = create_arguments(run, spec(slot=1), "web-1")
    assert args == {
        "image": f"reg:5000/shop@{D1}",
        "name": "shop-prod-v1.2.0-b",
        "detach": True,
        "labels": spec(slot=1).labels(),
        "environment": {"JAVA_OPTS": "-Xmx256m", "QUAYSIDE_LISTEN": "0.0.0.0:8080"},
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 5},
        "ports": {"8080/tcp": ("127.0.0.1", 18081)},  # no "init": not asked for
        "volumes": {"/srv/qs/web-1/shop-prod-v1.2.0-b": {"bind": "/etc/shop", "mode": "ro"}},
        "mem_limit": "512m",
        "nano_cpus": 1_500_000_000,
        "pids_limit": 200,
        "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
    }


def test_create_arguments_host_network_listen_on_the_slot_without_config() -> None:
    run = ImageRun(
        network="host", slots=("127.0.0.5:9001", "127.0.0.5:9002"), listen_env="PORT_AT",
        init=True,
    )  # fmt: skip
    args = create_arguments(run, spec(slot=0), "web-1")
    assert args["network_mode"] == "host" and "ports" not in args and args["init"] is True
    assert args["environment"] == {"PORT_AT": "127.0.0.5:9001"}
    assert "volumes" not in args and "mem_limit" not in args and "log_config" not in args
    assert args["restart_policy"] == {"Name": "unless-stopped"}
    assert probe_url(run, 1) == "http://127.0.0.5:9002/"


@pytest.mark.parametrize(
    "version", ["v1;rm -rf /", "$(id)", "`id`", "v1 v2", "../v1", "-rf", "v1|x", "v1&", ""]
)
def test_versions_with_shell_metacharacters_are_refused(version: str) -> None:
    with pytest.raises(InputError, match="is not a version"):
        spec(version=version)


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "a" * 64, "sha256:" + "G" * 64])
def test_bad_digests_are_refused(digest: str) -> None:
    with pytest.raises(InputError, match="is not a sha256"):
        check_digest(digest)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slots", ("127.0.0.1:1", "127.0.0.1:1")),
        ("slots", ("127.0.0.1:1", "x;y:2")),
        ("config_dir", "relative/dir"),
        ("config_dir", "/srv/../etc"),
        ("listen_env", "A-B"),
    ],
)
def test_image_run_refuses_bad_settings(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        ImageRun(**{field: value})  # type: ignore[arg-type]


def test_upstream_file_names_the_slot_and_reads_back() -> None:
    traffic = ImageTraffic(dir="/etc/nginx/{host}", url="http://{address}/", upstream="shop")
    text = upstream_text(traffic, "127.0.0.1:18081", "shop/prod v2\nsha256:x")
    assert text == (
        "# written by quayside: shop/prod v2 sha256:x\n"
        "upstream shop {\n    server 127.0.0.1:18081 max_fails=0;\n}\n"
        "proxy_hide_header X-Quayside-Upstream;\n"
        "add_header X-Quayside-Upstream $upstream_addr always;\n"
    )
    assert slot_in_upstream(text) == "127.0.0.1:18081"
    assert slot_in_upstream("upstream app {\n    server 127.0.0.81:1;\n}\n") == "127.0.0.81:1"
    assert slot_in_upstream(None) is None and slot_in_upstream("# nothing\n") is None


def test_the_switch_is_a_config_publish_of_an_nginx_service() -> None:
    traffic = ImageTraffic(dir="/etc/nginx/{host}", url="http://{address}:8080/", keep_versions=3)
    service = traffic_service(traffic)
    assert service.kind == "nginx" and service.main_file == "nginx.conf"
    assert service.dir == "/etc/nginx/{host}" and service.verify_url == "http://{address}:8080/"
    assert service.keep_versions == 3 and service.check is None  # nginx's default check


def test_config_files_go_through_argv_and_a_tar_on_stdin() -> None:
    argv = write_config_argv("/srv/qs/web-1/shop-prod-v1-a; rm -rf /")
    assert argv[:2] == ["sh", "-c"] and argv[3] == "/srv/qs/web-1/shop-prod-v1-a; rm -rf /"
    assert "rm -rf /" not in argv[2]
    assert config_tar([("app.properties", "a=1\n")])[:14] == b"././@PaxHeader"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


def _image(
    engine: Engine, version: str, digest: str, files: dict[str, int], ok: bool = True
) -> int:
    row = start_release(
        engine, "shop", "prod", ReleaseKind.image, requested_by="ann", version=version,
        image_digest=digest, details={"digest": digest, "config_files": files,
                                      "serves": f"{digest} config {files}"},
    )  # fmt: skip
    finish_release(engine, row.id, ReleaseStatus.succeeded if ok else ReleaseStatus.failed)
    return int(row.id)


def test_rollback_goes_to_the_previous_digest_with_its_config_versions(engine: Engine) -> None:
    first = _image(engine, "v1", D1, {"app.properties": 1})
    _image(engine, "v2", D2, {"app.properties": 4})
    _image(engine, "v3", D3, {"app.properties": 5}, ok=False)  # failed: not current
    params = rollback_parameters(engine, "shop", "prod", to=None, requested_by="bo")
    assert params["version_or_digest"] == D1
    assert params["config_versions"] == {"app.properties": 1}
    assert params["requested_by"] == "bo" and params["app"] == "shop"
    assert rollback_parameters(engine, "shop", "prod", to="v1", requested_by="bo") == params
    assert rollback_parameters(engine, "shop", "prod", to=str(first), requested_by="bo") == params
    with pytest.raises(NotFoundError, match="no earlier succeeded image release 'v9'"):
        rollback_parameters(engine, "shop", "prod", to="v9", requested_by="bo")


def test_nothing_to_roll_back_is_named(engine: Engine) -> None:
    with pytest.raises(NotFoundError, match="shop/prod has no succeeded image release"):
        rollback_parameters(engine, "shop", "prod", to=None, requested_by="bo")


def test_kept_releases_protect_their_digests_from_pruning(engine: Engine) -> None:
    for version, digest in (("v1", D1), ("v2", D2), ("v3", D3)):
        _image(engine, version, digest, {})
    assert protected_digests(engine, "shop", "prod", 2) == {D3, D2}
    assert protected_digests(engine, "shop", "prod", 5) == {D1, D2, D3}
