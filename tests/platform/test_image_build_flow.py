"""The image-build flow against the session platform's Prefect server, a real Docker Engine
and a real htpasswd registry: versions kept per app in the ledger (the tag's version, else the
next patch; the same commit again is no change), the recorded digest equal to skopeo's, the
artifact checksum recorded, and failures that record nothing as built."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from quayside.errors import InputError
from quayside.flows.image_build import image_build
from quayside.images.errors import BuildFailed, VersionRefused
from quayside.ledger.image_builds import built_images
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases
from quayside.registry import RegistryAuthError
from testbed.docker_engine import DockerEngine, busybox_path
from testbed.registry import RegistryPair, RegistryServer
from testbed.release_fixtures import Repo, ledger, run_flow_fixture  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]

WAR = b"war bytes " * 1000
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
COPY app.war /app/app.war
COPY index.html /www/index.html
"""
PASSWORD_ENV = "QS_TEST_BUILD_REGISTRY_PASSWORD"


@pytest.fixture
def image_repo(tmp_path: Path) -> Repo:
    busybox = busybox_path()
    assert busybox is not None
    repo = Repo(tmp_path / "imgapp")
    shutil.copy(busybox, repo.path / "busybox")
    repo.commit({"Dockerfile": DOCKERFILE, "app.war": WAR, "index.html": "one\n"}, tag="v1.4.0")
    return repo


def write_image_inventory(path: Path, repo: Repo, server: RegistryServer, app: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "hosts": {},
                "secrets": {"build_registry": {"env": PASSWORD_ENV}},
                "apps": {
                    app: {
                        "repo": str(repo.path),
                        "image": {"build": {"artifact_path": "/app/app.war"}},
                        "environments": {
                            "test": {
                                "registry": {
                                    "url": server.url,
                                    "repository": f"team/{app}",
                                    "username": server.username,
                                    "password_secret": "build_registry",
                                }
                            }
                        },
                    }
                },
            }
        )
    )


def skopeo_digest(server: RegistryServer, name: str) -> str:
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false",
         f"--creds={server.username}:{server.password}", f"docker://{server.host}/{name}"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    return str(json.loads(out)["Digest"])


@pytest.fixture
def build_env(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    monkeypatch: pytest.MonkeyPatch,
) -> RegistryServer:
    monkeypatch.setenv("QUAYSIDE_BUILD_DOCKER_HOST", docker_engine.url)
    monkeypatch.setenv(PASSWORD_ENV, registries.source.password)
    return registries.source


def test_versions_digest_and_checksum_recorded_per_app(
    run_flow: Any, platform_inventory: Path, image_repo: Repo, build_env: RegistryServer
) -> None:
    server = build_env
    write_image_inventory(platform_inventory, image_repo, server, "imgapp")

    first = run_flow(image_build, "imgapp", "v1.4.0")
    assert first["result"] == "built" and first["version"] == "1.4.0"
    assert first["digest"] == skopeo_digest(server, "team/imgapp:1.4.0")
    row = get_release(ledger(), first["release"])
    assert row.kind is ReleaseKind.image_build and row.status is ReleaseStatus.succeeded
    assert row.version == "1.4.0" and row.image_digest == first["digest"]
    assert row.commit_sha == image_repo.git("rev-parse", "v1.4.0").strip()
    assert row.details["artifact_sha256"] == "sha256:" + hashlib.sha256(WAR).hexdigest()
    assert row.details["image"] == f"{server.host}/team/imgapp:1.4.0"

    # a branch is no version: the next patch after the newest recorded one
    image_repo.commit({"index.html": "two\n"})
    second = run_flow(image_build, "imgapp", "main")
    assert second["version"] == "1.4.1"
    assert second["digest"] == skopeo_digest(server, "team/imgapp:1.4.1")
    assert second["cached_steps"] >= 3  # busybox twice and the war came from the cache

    # the same commit again: no change, the recorded version and digest
    again = run_flow(image_build, "imgapp", "main")
    assert again["result"] == "no change"
    assert (again["version"], again["digest"]) == ("1.4.1", second["digest"])
    assert get_release(ledger(), again["release"]).status is ReleaseStatus.cancelled
    assert [b.version for b in built_images(ledger(), "imgapp")] == ["1.4.1", "1.4.0"]

    # a version tag moved to other code is refused, not rebuilt under the same name
    image_repo.git("tag", "-f", "v1.4.0")
    with pytest.raises(VersionRefused, match=r"imgapp 1\.4\.0 was already built from commit"):
        run_flow(image_build, "imgapp", "v1.4.0")


def test_failures_record_nothing_as_built(
    run_flow: Any,
    platform_inventory: Path,
    image_repo: Repo,
    build_env: RegistryServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = build_env
    write_image_inventory(platform_inventory, image_repo, server, "imgfail")
    # a ref with shell metacharacters: refused before anything is recorded or run
    with pytest.raises(InputError):
        run_flow(image_build, "imgfail", "main;touch /tmp/qs-pwned")
    assert list_releases(ledger(), "imgfail", "test") == []

    image_repo.commit({"Dockerfile": DOCKERFILE + "RUN echo 'cannot compile' >&2; exit 2\n"})
    with pytest.raises(BuildFailed, match="cannot compile") as caught:
        run_flow(image_build, "imgfail", "main")
    assert "returned a non-zero code: 2" in str(caught.value)
    rows = list_releases(ledger(), "imgfail", "test")
    assert rows[0].status is ReleaseStatus.failed and rows[0].version == "0.0.1"
    assert rows[0].details["error"].startswith("build: image build failed at step 6/")
    assert built_images(ledger(), "imgfail") == []

    # wrong credentials: named registry and user, refused before the build
    image_repo.commit({"Dockerfile": DOCKERFILE})
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    with pytest.raises(RegistryAuthError) as refused:
        run_flow(image_build, "imgfail", "main")
    assert server.host in str(refused.value) and repr(server.username) in str(refused.value)
    assert built_images(ledger(), "imgfail") == []

    # fixed: the version nothing was built under is the one it gets
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    assert run_flow(image_build, "imgfail", "main")["version"] == "0.0.1"
