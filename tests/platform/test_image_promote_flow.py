"""The image-promote flow on the session platform with two real htpasswd registries (test's
and prod's: different addresses, storage and credentials), a real Docker Engine and nginx:
v1 promoted from test to prod is in prod's registry under the same digest (checked with
skopeo) and runs in prod through an image release that names the promotion; promoting it
again uploads nothing; a digest the source lacks and a string that is not a version are
refused in one line before anything is recorded."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from quayside.auth import service
from quayside.flows.image_promote import image_promote
from quayside.ledger.models import ApprovalRequest, ApprovalStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases
from quayside.runs import read_run, start_run
from testbed.docker_engine import DockerEngine
from testbed.image_app import APP_ADDRESS, FrontNginx, free_tcp_port
from testbed.platform import PROJECT_DIR, Platform
from testbed.registry import RegistryPair, RegistryServer
from testbed.release_fixtures import ledger, run_flow_fixture  # noqa: F401  (fixtures)
from tests.hosts.test_image_release_host import HOST, Pushed, app_images  # noqa: F401

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]

SOURCE_PASSWORD = "QS_TEST_PROMOTE_SOURCE_PASSWORD"
TARGET_PASSWORD = "QS_TEST_PROMOTE_TARGET_PASSWORD"


def _slots() -> list[str]:
    ports: set[int] = set()
    while len(ports) < 2:
        ports.add(free_tcp_port(APP_ADDRESS))
    return [f"{APP_ADDRESS}:{p}" for p in sorted(ports)]


def _registry(server: RegistryServer, repository: str, secret: str) -> dict[str, str]:
    return {"url": server.url, "repository": repository, "username": server.username,
            "password_secret": secret}  # fmt: skip


def _inventory(
    path: Path, app: str, docker: DockerEngine, registries: RegistryPair, front: FrontNginx,
    source_repository: str, target_repository: str, tmp_path: Path,
    secrets: dict[str, dict[str, str]] | None = None, prod: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    run: dict[str, Any] = {
        "network": "host", "init": True, "slots": _slots(), "health_path": "/health",
        "health_timeout_s": 5, "config_dir": str(tmp_path / "configs" / "{host}"),
        "traffic": front.traffic(),
    }  # fmt: skip
    path.write_text(
        yaml.safe_dump(
            {
                "hosts": {HOST: {"address": APP_ADDRESS, "transport": "local",
                                 "docker": {"url": docker.url}}},
                "secrets": secrets or {"test_registry": {"env": SOURCE_PASSWORD},
                                       "prod_registry": {"env": TARGET_PASSWORD}},
                "apps": {
                    app: {
                        "repo": "https://git.example.invalid/shop.git",
                        "deploy_root": str(tmp_path / "{host}"),
                        "image": {"build": {"artifact_path": "/app/app.war"}, "run": run},
                        "environments": {
                            "test": {"hosts": [HOST], "registry": _registry(
                                registries.source, source_repository, "test_registry")},
                            "prod": {"hosts": [HOST], "registry": _registry(
                                registries.target, target_repository, "prod_registry"),
                                **(prod or {})},
                        },
                    }
                },
            }
        )
    )  # fmt: skip


def skopeo_digest(server: RegistryServer, name: str) -> str:
    """The manifest digest ``skopeo inspect`` (an independent client) reads at ``name``."""
    binary = shutil.which("skopeo")
    assert binary is not None, "skopeo (Debian skopeo) is needed"
    out = subprocess.run(
        [binary, "inspect", "--raw", "--tls-verify=false",
         f"--creds={server.username}:{server.password}", f"docker://{server.host}/{name}"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    import hashlib

    json.loads(out)  # a manifest
    return "sha256:" + hashlib.sha256(out).hexdigest()


def _blob_count(registries: RegistryPair, image: Pushed) -> int:
    """How many distinct blobs (config and layers) the image has at the source."""
    from quayside.registry import RegistryClient
    from quayside.registry.copy import read_manifests

    repository = image.image.split("/", 1)[1].split("@", 1)[0]
    with RegistryClient(registries.source.settings()) as client:
        manifests = read_manifests(client, repository, image.digest)
    return len({b.digest for m in manifests for b in m.blobs})


@dataclass
class Env:
    app: str
    images: dict[str, Pushed]
    target_repository: str


@pytest.fixture
def promote_env(
    run_flow: Any,
    platform_inventory: Path,
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    monkeypatch.setenv(SOURCE_PASSWORD, registries.source.password)
    monkeypatch.setenv(TARGET_PASSWORD, registries.target.password)
    source_repository = app_images["v1"].image.split("/", 1)[1].split("@", 1)[0]
    target_repository = f"prod/shop-{secrets.token_hex(4)}"
    app = f"prm{secrets.token_hex(3)}"  # the session's ledger is shared
    _inventory(platform_inventory, app, docker_engine, registries, image_front,
               source_repository, target_repository, tmp_path)  # fmt: skip
    yield Env(app, app_images, target_repository)
    client = docker_engine.client()
    try:
        for c in client.containers.list(all=True, filters={"label": f"quayside.app={app}"}):
            c.remove(force=True)
    finally:
        client.close()


def test_promote_v1_from_test_to_prod_copies_the_digest_and_releases_it_there(
    run_flow: Any, promote_env: Env, registries: RegistryPair, image_front: FrontNginx
) -> None:
    app, v1 = promote_env.app, promote_env.images["v1"]
    target = promote_env.target_repository
    out = run_flow(image_promote, app, "test", "prod", "v1")
    assert out["digest"] == v1.digest and out["version"] == "v1"
    assert out["result"] == "released" and out["hosts"] == {HOST: "succeeded"}, out
    assert out["copy"]["blobs_uploaded"] > 0 and out["copy"]["blobs_present"] == 0

    # prod's registry holds the same digest, by digest and under the version's tag
    assert skopeo_digest(registries.target, f"{target}@{v1.digest}") == v1.digest
    assert skopeo_digest(registries.target, f"{target}:v1") == v1.digest
    assert image_front.get() == "v1"  # it runs in prod

    release = get_release(ledger(), out["release"])
    assert release.kind is ReleaseKind.image and release.env_name == "prod"
    assert release.status is ReleaseStatus.succeeded and release.image_digest == v1.digest
    promote = release.details["promote"]
    assert promote["from_env"] == "test" and promote["digest"] == v1.digest
    assert promote["target"] == f"{registries.target.host}/{target}"
    assert promote["promotion"] == out["promotion"]
    promotion = get_release(ledger(), out["promotion"])
    assert promotion.kind is ReleaseKind.image_promote
    assert promotion.status is ReleaseStatus.succeeded
    assert promotion.details["image_release"] == out["release"]
    assert promotion.details["copy"]["blobs_uploaded"] == out["copy"]["blobs_uploaded"]

    # again: the target has every blob and the manifest; prod serves it already
    again = run_flow(image_promote, app, "test", "prod", v1.digest)
    assert again["copy"]["blobs_uploaded"] == 0 and again["copy"]["bytes_uploaded"] == 0
    assert again["result"] == "no change" and again["release"] is None


def test_a_digest_the_source_lacks_is_refused_in_one_line(
    run_flow: Any, promote_env: Env, registries: RegistryPair
) -> None:
    app = promote_env.app
    missing = "sha256:" + "0" * 64
    with pytest.raises(Exception, match=f"has no manifest {missing}") as caught:
        run_flow(image_promote, app, "test", "prod", missing)
    assert registries.source.host in str(caught.value) and "\n" not in str(caught.value)
    assert list_releases(ledger(), app, "prod", limit=10) == []


@pytest.mark.parametrize("given", ["v1;touch /tmp/x", "not a version", "sha256:zz"])
def test_a_string_that_is_not_a_version_is_refused_in_one_line(
    run_flow: Any, promote_env: Env, given: str
) -> None:
    app = promote_env.app
    with pytest.raises(Exception, match="is not a (version|sha256)") as caught:
        run_flow(image_promote, app, "test", "prod", given)
    assert "\n" not in str(caught.value)
    assert list_releases(ledger(), app, "prod", limit=10) == []


def test_target_registry_down_nothing_promoted_then_the_retry_promotes(
    run_flow: Any, promote_env: Env, registries: RegistryPair, image_front: FrontNginx
) -> None:
    app, v1 = promote_env.app, promote_env.images["v1"]
    registries.target.stop()
    try:
        with pytest.raises(Exception, match=f"registry {registries.target.host}: no answer"):
            run_flow(image_promote, app, "test", "prod", "v1")
    finally:
        registries.target.start()
    # the copy plan asks the target first: nothing recorded, nothing released
    assert list_releases(ledger(), app, "prod", limit=10) == []
    assert image_front.get() != "v1"

    out = run_flow(image_promote, app, "test", "prod", "v1")
    assert out["result"] == "released" and out["hosts"] == {HOST: "succeeded"}
    assert skopeo_digest(registries.target, f"{promote_env.target_repository}@{v1.digest}") == (
        v1.digest
    )
    assert image_front.get() == "v1"


def test_target_registry_down_mid_copy_nothing_promoted_then_only_the_rest_is_copied(
    run_flow: Any,
    promote_env: Env,
    registries: RegistryPair,
    image_front: FrontNginx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import quayside.tasks.image_promote as task_module

    app, v1 = promote_env.app, promote_env.images["v1"]
    real = task_module.copy_promoted
    seen: list[str] = []

    def stop_after_the_first_blob(choice: Any, on_blob: Any = None) -> Any:
        def one(blob: Any, action: str) -> None:
            seen.append(blob.digest)
            if len(seen) == 1:
                registries.target.stop()  # the real registry goes away mid-copy

        return real(choice, on_blob=one)

    monkeypatch.setattr(task_module, "copy_promoted", stop_after_the_first_blob)
    try:
        with pytest.raises(Exception, match=f"registry {registries.target.host}: no answer"):
            run_flow(image_promote, app, "test", "prod", "v1")
    finally:
        registries.target.start()
    monkeypatch.setattr(task_module, "copy_promoted", real)
    (promotion,) = list_releases(ledger(), app, "prod", limit=10)  # no image release
    assert promotion.kind is ReleaseKind.image_promote
    assert promotion.status is ReleaseStatus.failed
    assert str(promotion.details["error"]).startswith("copy: registry ")
    assert image_front.get() != "v1"

    out = run_flow(image_promote, app, "test", "prod", "v1")
    copied = out["copy"]
    assert copied["blobs_present"] >= 1  # what got there before the registry went away
    assert copied["blobs_present"] + copied["blobs_uploaded"] == _blob_count(registries, v1)
    assert out["result"] == "released" and image_front.get() == "v1"
    assert skopeo_digest(registries.target, f"{promote_env.target_repository}@{v1.digest}") == (
        v1.digest
    )


# -- promotions into an environment whose policy requires approval, run by the worker -------

WAITING = ("Paused", "Suspended")


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _answer_with_cli(platform: Platform, run_id: str, token: str, *more: str) -> None:
    """``quayside approve RUN`` with a MASTER's token: the path every approval test takes
    (the CLI checks and records the answer in the ledger and wakes the run)."""
    answer = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "approve", run_id, "--wait", "240", *more],
        env=platform.env | {"QUAYSIDE_TOKEN": token},
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stdout + answer.stderr


def _requests_of_run(run_id: str) -> list[ApprovalRequest]:
    with Session(ledger()) as session:
        query = select(ApprovalRequest).where(ApprovalRequest.flow_run_id == run_id)
        return list(session.scalars(query.order_by(ApprovalRequest.id)))


def _in_registry(server: RegistryServer, name: str) -> bool:
    binary = shutil.which("skopeo")
    assert binary is not None, "skopeo (Debian skopeo) is needed"
    found = subprocess.run(
        [binary, "inspect", "--raw", "--tls-verify=false",
         f"--creds={server.username}:{server.password}", f"docker://{server.host}/{name}"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return found.returncode == 0


@dataclass
class GatedEnv:
    app: str
    images: dict[str, Pushed]
    target_repository: str
    lead_token: str


@pytest.fixture
def gated_env(
    platform: Platform,
    platform_inventory: Path,
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> Iterator[GatedEnv]:
    """prod needs one MASTER's approval; the worker runs the promotion (the registries'
    passwords in Prefect Secret blocks, which the worker reads)."""
    from prefect.blocks.system import Secret

    suffix = secrets.token_hex(3)
    app = f"prg{suffix}"
    names = {
        "test_registry": f"qs-promote-test-{suffix}",
        "prod_registry": f"qs-promote-prod-{suffix}",
    }
    Secret(value=registries.source.password).save(names["test_registry"], overwrite=True)
    Secret(value=registries.target.password).save(names["prod_registry"], overwrite=True)
    engine = ledger()
    service.create_user(engine, f"{app}-lead")
    service.grant_role(engine, f"{app}-lead", "MASTER", space="default")
    token = service.create_token(engine, f"{app}-lead")
    source_repository = app_images["v1"].image.split("/", 1)[1].split("@", 1)[0]
    target_repository = f"prod/shop-{suffix}"
    approval = {"required": 1, "role": "MASTER", "unattributed": "one_approver"}
    _inventory(platform_inventory, app, docker_engine, registries, image_front,
               source_repository, target_repository, tmp_path,
               secrets={k: {"prefect_secret": v} for k, v in names.items()},
               prod={"approval": approval})  # fmt: skip
    yield GatedEnv(app, app_images, target_repository, token)
    client = docker_engine.client()
    try:
        for c in client.containers.list(all=True, filters={"label": f"quayside.app={app}"}):
            c.remove(force=True)
    finally:
        client.close()


def _start_gated(env: GatedEnv) -> str:
    handle = start_run(
        "image-promote",
        {"app": env.app, "from_env": "test", "to_env": "prod", "version_or_digest": "v1",
         "requested_by": f"{env.app}-dev"},
    )  # fmt: skip
    _wait_for("the promote gate", lambda: read_run(handle.id).state_name in WAITING)
    return handle.id


def test_a_promotion_into_an_approval_env_asks_once_and_the_release_names_the_approval(
    platform: Platform, gated_env: GatedEnv, registries: RegistryPair, image_front: FrontNginx
) -> None:
    env, v1 = gated_env, gated_env.images["v1"]
    run_id = _start_gated(env)
    (request,) = _requests_of_run(run_id)
    assert request.gate == "promote" and request.env == "prod"
    assert v1.digest in request.summary  # the promote gate's description: the digest
    assert not _in_registry(registries.target, f"{env.target_repository}@{v1.digest}")

    _answer_with_cli(platform, run_id, env.lead_token)
    _wait_for("the promotion", lambda: read_run(run_id).final)
    state = read_run(run_id)
    assert state.state_type == "COMPLETED", state.message

    # one approval request, one approval, and the image release ran on it
    (decided,) = _requests_of_run(run_id)
    assert decided.id == request.id and decided.status is ApprovalStatus.approved
    assert [(d.user, d.valid) for d in decided.decisions] == [(f"{env.app}-lead", True)]
    rows = {r.kind: r for r in list_releases(ledger(), env.app, "prod", limit=10)}
    assert set(rows) == {ReleaseKind.image_promote, ReleaseKind.image}
    promotion, release = rows[ReleaseKind.image_promote], rows[ReleaseKind.image]
    assert promotion.status is ReleaseStatus.succeeded and decided.release_id == promotion.id
    assert release.status is ReleaseStatus.succeeded and release.image_digest == v1.digest
    assert release.details["approval"] == {
        "request": request.id, "gate": "promote", "approvers": [f"{env.app}-lead"],
        "for_release": promotion.id,
    }  # fmt: skip
    assert promotion.details["image_release"] == release.id
    assert skopeo_digest(registries.target, f"{env.target_repository}@{v1.digest}") == v1.digest
    assert image_front.get() == "v1"


def test_a_refused_promote_gate_copies_nothing_and_releases_nothing(
    platform: Platform, gated_env: GatedEnv, registries: RegistryPair, image_front: FrontNginx
) -> None:
    env, v1 = gated_env, gated_env.images["v1"]
    run_id = _start_gated(env)
    _answer_with_cli(platform, run_id, env.lead_token, "--reject", "-m", "not today")
    _wait_for("the refusal", lambda: read_run(run_id).final)
    assert read_run(run_id).state_type != "COMPLETED"

    (request,) = _requests_of_run(run_id)
    assert request.gate == "promote" and request.status is ApprovalStatus.rejected
    assert [(d.user, d.decision.value, d.comment) for d in request.decisions] == [
        (f"{env.app}-lead", "reject", "not today")
    ]
    (promotion,) = list_releases(ledger(), env.app, "prod", limit=10)  # no image release
    assert promotion.kind is ReleaseKind.image_promote
    assert promotion.status is ReleaseStatus.cancelled and promotion.id == request.release_id
    assert "copy" not in (promotion.details or {})
    assert not _in_registry(registries.target, f"{env.target_repository}@{v1.digest}")
    assert not _in_registry(registries.target, f"{env.target_repository}:v1")
    assert image_front.get() != "v1"
