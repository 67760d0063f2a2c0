"""An image build on a real Docker Engine pushed to a real htpasswd registry (Debian
docker-registry): the source exported from a local git repository with tags, built FROM
scratch + busybox-static, pushed; the digest checked with skopeo (an independent client), the
OCI labels and the artifact checksum read back, the layer cache reused after a one-file
change, and every refusal (a failing Dockerfile, wrong credentials, unsafe names) named."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quayside.images.build_image import BuildResult, BuildSpec, build_and_push
from quayside.images.build_request import LABEL_REF, LABEL_REVISION, LABEL_SOURCE
from quayside.images.engine_build import open_engine
from quayside.images.errors import BuildFailed
from quayside.inventory.image_models import ImageBuild
from quayside.registry import InvalidImageName, RegistryAuthError
from quayside.source.mirror import GitMirror
from testbed.docker_engine import DockerEngine, busybox_path
from testbed.registry import RegistryPair, RegistryServer
from testbed.release_fixtures import Repo

WAR = b"PK\x03\x04 not really a war, but bytes whose sha256 we know\n" * 100

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
ARG GREETING=hello
RUN echo "$GREETING" > /greeting
COPY app/shop.war /app/shop.war
COPY static/ /app/static/
CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/app/static"]
"""


@pytest.fixture
def shop_repo(tmp_path: Path) -> Repo:
    """A git repository of an image app: busybox, a Dockerfile, a war, static files."""
    busybox = busybox_path()
    assert busybox is not None
    repo = Repo(tmp_path / "shop")
    shutil.copy(busybox, repo.path / "busybox")  # executable, as git records it
    repo.commit(
        {
            "Dockerfile": DOCKERFILE,
            "app/shop.war": WAR,
            "static/index.html": "v1\n",
        },
        tag="v1.0.0",
    )
    return repo


@pytest.fixture
def engine_api(docker_engine: DockerEngine) -> Iterator[Any]:
    api = open_engine(docker_engine.url)
    yield api
    api.close()


def export(repo: Repo, ref: str, tmp_path: Path) -> tuple[str, Path]:
    """The tree at ``ref`` exported through the app's mirror, as the flow does."""
    mirror = GitMirror(tmp_path / "mirrors", str(repo.path))
    mirror.sync()
    sha = mirror.resolve(ref)
    dest = tmp_path / f"export-{secrets.token_hex(4)}"
    return sha, mirror.export(sha, dest)


def spec_for(
    server: RegistryServer,
    repository: str,
    ref: str,
    sha: str,
    version: str,
    *,
    password: str | None = None,
    **build: Any,
) -> BuildSpec:
    settings = server.settings(**({"password": password} if password is not None else {}))
    return BuildSpec.make(
        app="shop",
        ref=ref,
        commit_sha=sha,
        source_url="/git/shop.git",
        version=version,
        repository=repository,
        build=ImageBuild(artifact_path="/app/shop.war", build_args={"GREETING": "hi"}, **build),
        registry=settings,
    )


def skopeo_inspect(server: RegistryServer, name: str, *raw: str) -> Any:
    binary = shutil.which("skopeo")
    assert binary is not None, "skopeo (Debian skopeo) is needed"
    out = subprocess.run(
        [binary, "inspect", *raw, "--tls-verify=false",
         f"--creds={server.username}:{server.password}", f"docker://{server.host}/{name}"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    return out if raw else json.loads(out)


def build(spec: BuildSpec, source: Path, api: Any) -> tuple[BuildResult, list[str]]:
    lines: list[str] = []
    return build_and_push(spec, source, api, lines.append), lines


def test_build_pushes_digest_labels_and_artifact_checksum(
    shop_repo: Repo, registries: RegistryPair, engine_api: Any, tmp_path: Path
) -> None:
    server = registries.source
    repository = f"shop/app-{secrets.token_hex(4)}"
    sha, source = export(shop_repo, "v1.0.0", tmp_path)
    result, lines = build(spec_for(server, repository, "v1.0.0", sha, "1.0.0"), source, engine_api)

    assert result.image == f"{server.host}/{repository}:1.0.0"
    inspected = skopeo_inspect(server, f"{repository}:1.0.0")
    assert result.digest == inspected["Digest"]
    raw = skopeo_inspect(server, f"{repository}:1.0.0", "--raw")
    assert result.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    labels = inspected["Labels"]
    assert labels[LABEL_REVISION] == sha
    assert labels[LABEL_REF] == "v1.0.0"
    assert labels[LABEL_SOURCE] == "/git/shop.git"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert result.artifact_sha256 == "sha256:" + hashlib.sha256(WAR).hexdigest()
    # the build's output went to the caller line by line, steps and all
    assert any(line.startswith("Step 1/") for line in lines)
    assert f"pushed {result.image} as {result.digest}" in lines
    assert engine_api.inspect_image(result.image_id)["Config"]["Labels"][LABEL_REVISION] == sha


def test_one_file_change_reuses_the_layer_cache(
    shop_repo: Repo, registries: RegistryPair, engine_api: Any, tmp_path: Path
) -> None:
    server = registries.source
    repository = f"shop/cache-{secrets.token_hex(4)}"
    sha1, source1 = export(shop_repo, "v1.0.0", tmp_path)
    first, _ = build(spec_for(server, repository, "v1.0.0", sha1, "1.0.0"), source1, engine_api)
    shop_repo.commit({"static/index.html": "v2\n"}, tag="v1.0.1")
    sha2, source2 = export(shop_repo, "v1.0.1", tmp_path)
    second, lines = build(
        spec_for(server, repository, "v1.0.1", sha2, "1.0.1"), source2, engine_api
    )

    assert second.digest != first.digest
    cached = [step.split(" ", 1)[1] for step in second.cached_steps]
    # everything before the changed file came from the cache, the changed COPY did not
    assert "COPY busybox /bin/busybox" in cached
    assert 'RUN echo "$GREETING" > /greeting' in cached
    assert "COPY app/shop.war /app/shop.war" in cached
    assert "COPY static/ /app/static/" not in cached
    assert lines.count(" ---> Using cache") == len(second.cached_steps)
    assert skopeo_inspect(server, f"{repository}:1.0.1")["Digest"] == second.digest


def test_failing_dockerfile_names_the_step_and_its_error_lines(
    shop_repo: Repo, registries: RegistryPair, engine_api: Any, tmp_path: Path
) -> None:
    server = registries.source
    repository = f"shop/broken-{secrets.token_hex(4)}"
    shop_repo.commit(
        {"Dockerfile": DOCKERFILE.replace(
            'RUN echo "$GREETING" > /greeting',
            'RUN echo "no such tool: mvnw" >&2; echo second line >&2; exit 7',
        )},
        tag="v1.0.2",
    )  # fmt: skip
    sha, source = export(shop_repo, "v1.0.2", tmp_path)
    lines: list[str] = []
    with pytest.raises(BuildFailed) as caught:
        build_and_push(
            spec_for(server, repository, "v1.0.2", sha, "1.0.2"), source, engine_api, lines.append
        )
    message = str(caught.value)
    assert "step 5/" in message and " RUN echo " in message
    assert "returned a non-zero code: 7" in message
    assert "no such tool: mvnw" in message and "second line" in message
    assert any("no such tool: mvnw" in line for line in lines)  # streamed as it happened
    # nothing was pushed
    with pytest.raises(subprocess.CalledProcessError):
        skopeo_inspect(server, f"{repository}:1.0.2")


def test_wrong_registry_password_names_registry_and_user_before_building(
    shop_repo: Repo, registries: RegistryPair, engine_api: Any, tmp_path: Path
) -> None:
    server = registries.source
    sha, source = export(shop_repo, "v1.0.0", tmp_path)
    lines: list[str] = []
    spec = spec_for(server, "shop/creds", "v1.0.0", sha, "1.0.0", password="wrong")
    with pytest.raises(RegistryAuthError) as caught:
        build_and_push(spec, source, engine_api, lines.append)
    message = str(caught.value)
    assert server.host in message and repr(server.username) in message
    assert "wrong" not in message.replace("wrong username", "")  # never the password
    assert lines == []  # refused before the build started


@pytest.mark.parametrize(
    ("repository", "version"),
    [("shop;touch /tmp/pwned", "1.0.0"), ("shop", "1.0.0;ls"), ("shop", "$(id)"),
     ("Shop/App", "1.0.0"), ("shop/../etc", "1.0.0")],
)  # fmt: skip
def test_unsafe_image_names_and_tags_refused_before_the_engine(
    repository: str, version: str, registries: RegistryPair
) -> None:
    with pytest.raises(InvalidImageName):
        spec_for(registries.source, repository, "main", "a" * 40, version)
