"""Image build units: version choice, OCI labels and the engine's build arguments, the build
stream read from a recorded engine output (steps, cache hits, the failing step and its error
lines), the push's credentials, the artifact checksum from a tar stream, the registry
settings from the inventory's secrets, and the paths a build may use."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from quayside.errors import ConfigError, InputError, NotFoundError
from quayside.images.artifact import sha256_of_tar_file
from quayside.images.build_image import BuildResult, BuildSpec, context_and_dockerfile
from quayside.images.build_request import (
    LABEL_CREATED,
    LABEL_REF,
    LABEL_REVISION,
    LABEL_SOURCE,
    LABEL_VERSION,
    build_arguments,
    image_name,
    inside,
    oci_labels,
)
from quayside.images.build_stream import BuildLog
from quayside.images.build_target import build_target
from quayside.images.engine_build import build_engine_url
from quayside.images.errors import ArtifactMissing, BuildFailed, VersionRefused
from quayside.images.push import auth_config
from quayside.images.registry_access import registry_settings
from quayside.images.versions import Version, already_built, choose_version, parse_version
from quayside.inventory.image_models import ImageBuild
from quayside.inventory.models import Inventory
from quayside.registry import InvalidImageName, RegistrySettings
from quayside.runs.secrets import secret_value
from quayside.tasks.image_build import summary_markdown

SHA = "3f" * 20

# -- versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [("v1.2.3", Version(1, 2, 3)), ("1.2.3", Version(1, 2, 3)), ("v0.10.0", Version(0, 10, 0)),
     ("main", None), ("v1.2", None), ("1.2.3-rc1", None), ("v01.2.3", None), ("1.2.3;ls", None),
     ("release-1.2.3", None)],
)  # fmt: skip
def test_parse_version(text: str, version: Version | None) -> None:
    assert parse_version(text) == version


def test_a_version_tag_is_the_version() -> None:
    choice = choose_version("v2.0.0", ref_is_tag=True, recorded=["2.3.9"])
    assert (choice.tag, choice.reason) == ("2.0.0", "tag v2.0.0")


def test_a_branch_named_like_a_version_is_no_version() -> None:
    assert choose_version("1.2.3", ref_is_tag=False, recorded=["1.0.0"]).tag == "1.0.1"


def test_not_a_version_gets_the_next_patch_after_the_newest_numerically() -> None:
    choice = choose_version("main", ref_is_tag=False, recorded=["1.9.9", "1.10.0", "junk"])
    assert choice.tag == "1.10.1"
    assert choice.reason == "main is not a version tag: next patch after 1.10.0"
    assert choose_version("release-x", ref_is_tag=True, recorded=[]).tag == "0.0.1"


def test_a_version_built_from_other_code_is_refused() -> None:
    choice = choose_version("v1.0.0", ref_is_tag=True, recorded=["1.0.0"])
    assert already_built("shop", choice, SHA, {"1.0.0": SHA}) is True
    assert already_built("shop", choice, SHA, {"0.9.0": "aa" * 20}) is False
    with pytest.raises(VersionRefused) as caught:
        already_built("shop", choice, SHA, {"1.0.0": "ab" * 20})
    assert "shop 1.0.0 was already built from commit abababababab" in str(caught.value)
    assert "tag v1.0.0 now names commit 3f3f3f3f3f3f" in str(caught.value)
    assert caught.value.hint and "new version" in caught.value.hint


# -- labels, names and build arguments ----------------------------------------------------------


def test_oci_labels() -> None:
    labels = oci_labels(
        source="https://git.example.com/shop.git", commit_sha=SHA, ref="v1.2.3",
        version="1.2.3", created=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
    )  # fmt: skip
    assert labels == {
        LABEL_SOURCE: "https://git.example.com/shop.git",
        LABEL_REVISION: SHA,
        LABEL_REF: "v1.2.3",
        LABEL_VERSION: "1.2.3",
        LABEL_CREATED: "2026-03-04T05:06:07Z",
    }


def test_build_arguments_reuse_the_cache_and_stream(tmp_path: Path) -> None:
    image = image_name("registry.example.com:5000", "team/shop", "1.2.3")
    args = build_arguments(
        context=tmp_path, dockerfile="docker/Dockerfile", image=image,
        build_args={"JAVA_VERSION": "17", "WEIRD": "$(id); rm -rf /"},
        labels={LABEL_REVISION: SHA}, timeout_s=900,
    )  # fmt: skip
    assert args == {
        "path": str(tmp_path),
        "dockerfile": "docker/Dockerfile",
        "tag": "registry.example.com:5000/team/shop:1.2.3",
        # values are data in the API's JSON, never a shell string
        "buildargs": {"JAVA_VERSION": "17", "WEIRD": "$(id); rm -rf /"},
        "labels": {LABEL_REVISION: SHA},
        "rm": True,
        "forcerm": True,
        "nocache": False,
        "pull": False,
        "decode": True,
        "timeout": 900,
    }


@pytest.mark.parametrize(
    ("repository", "tag"),
    [("shop;touch x", "1.0.0"), ("shop", "1.0.0 && ls"), ("shop", "$(id)"), ("shop", "`id`"),
     ("Shop", "1.0.0"), ("shop/../x", "1.0.0"), ("shop", ".hidden"), ("shop", "")],
)  # fmt: skip
def test_unsafe_image_names_and_tags_refused(repository: str, tag: str) -> None:
    with pytest.raises(InvalidImageName):
        image_name("registry.example.com", repository, tag)


def test_build_arg_names_checked(tmp_path: Path) -> None:
    image = image_name("r.example.com", "shop", "1.0.0")
    with pytest.raises(InputError, match="build argument name 'A;B'"):
        build_arguments(
            context=tmp_path, dockerfile="Dockerfile", image=image,
            build_args={"A;B": "x"}, labels={}, timeout_s=60,
        )  # fmt: skip
    settings = RegistrySettings(url="http://r.example.com")
    with pytest.raises(InputError):
        BuildSpec.make(
            app="shop", ref="main", commit_sha=SHA, source_url="s", version="1.0.0",
            repository="shop", build=ImageBuild(build_args={"1X": "y"}), registry=settings,
        )  # fmt: skip


@pytest.mark.parametrize("path", ["/etc", "..", "../other", "a/../../b"])
def test_paths_outside_the_source_refused(path: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="outside the source tree"):
        inside(tmp_path, path, "image.build.context")


def test_dockerfile_must_exist_inside_the_context(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app" / "Dockerfile.prod").write_text("FROM scratch\n")
    assert context_and_dockerfile(tmp_path, ImageBuild()) == (tmp_path, "Dockerfile")
    build = ImageBuild(context="app", dockerfile="app/Dockerfile.prod")
    assert context_and_dockerfile(tmp_path, build) == (tmp_path / "app", "Dockerfile.prod")
    with pytest.raises(InputError, match="outside the build context 'app'"):
        context_and_dockerfile(tmp_path, ImageBuild(context="app"))
    with pytest.raises(InputError, match="'nope/Dockerfile' is not in the source"):
        context_and_dockerfile(tmp_path, ImageBuild(dockerfile="nope/Dockerfile"))


# -- the build stream ---------------------------------------------------------------------------

# what docker.io 20.10's engine streamed here for a cached build and a failing RUN step
CACHED_STREAM: list[dict[str, Any]] = [
    {"stream": "Step 1/4 : FROM scratch"}, {"stream": "\n"}, {"stream": " ---> \n"},
    {"stream": "Step 2/4 : COPY busybox /bin/busybox"}, {"stream": "\n"},
    {"stream": " ---> Using cache\n"}, {"stream": " ---> 99bd640c65b7\n"},
    {"stream": "Step 3/4 : COPY app.txt /app/app.txt"}, {"stream": "\n"},
    {"stream": " ---> 1a2b3c4d5e6f\n"},
    {"stream": "Step 4/4 : LABEL org.opencontainers.image.revision=abc"}, {"stream": "\n"},
    {"stream": " ---> Running in 0f0f0f0f\n"},
    {"stream": "Removing intermediate container 0f0f0f0f\n"}, {"stream": " ---> 40f81a129ac6\n"},
    {"aux": {"ID": "sha256:40f81a129ac6fb2d4e6a7d0a792b9ba4007a9e0f9fc37c05622eb6528fbd4c30"}},
    {"stream": "Successfully built 40f81a129ac6\n"},
    {"stream": "Successfully tagged probe:1\n"},
]  # fmt: skip
FAILING_STREAM: list[dict[str, Any]] = [
    {"stream": "Step 1/4 : FROM scratch"}, {"stream": "\n"}, {"stream": " ---> \n"},
    {"stream": "Step 2/4 : COPY busybox /bin/busybox"}, {"stream": "\n"},
    {"stream": " ---> Using cache\n"}, {"stream": " ---> 99bd640c65b7\n"},
    {"stream": "Step 3/4 : RUN ./mvnw package"}, {"stream": "\n"},
    {"stream": " ---> Running in 36410058bd41\n"},
    {"stream": "[INFO] Building shop 1.0\n"},
    {"stream": "\u001b[91m[ERROR] COMPILATION ERROR: Shop.java:[12,5] ';' expected\n\u001b[0m"},
    {"stream": "\u001b[91m[ERROR] BUILD FAIL"}, {"stream": "URE\n\u001b[0m"},
    {"errorDetail": {"code": 1, "message": "The command '/bin/sh -c ./mvnw package' returned a "
                     "non-zero code: 1"},
     "error": "The command '/bin/sh -c ./mvnw package' returned a non-zero code: 1"},
]  # fmt: skip


def test_stream_lines_steps_and_cache_hits() -> None:
    seen: list[str] = []
    log = BuildLog(on_line=seen.append)
    for item in CACHED_STREAM:
        log.feed(item)
    assert log.finish().startswith("sha256:40f81a12")
    assert seen[:3] == ["Step 1/4 : FROM scratch", " ---> ", "Step 2/4 : COPY busybox /bin/busybox"]
    assert log.steps == [
        "1/4 FROM scratch",
        "2/4 COPY busybox /bin/busybox",
        "3/4 COPY app.txt /app/app.txt",
        "4/4 LABEL org.opencontainers.image.revision=abc",
    ]
    assert log.cached_steps == ["2/4 COPY busybox /bin/busybox"]
    assert seen[-1] == "Successfully tagged probe:1"


def test_failing_step_and_its_error_lines_in_the_message() -> None:
    seen: list[str] = []
    log = BuildLog(on_line=seen.append)
    for item in FAILING_STREAM:
        log.feed(item)
    with pytest.raises(BuildFailed) as caught:
        log.finish()
    error = caught.value
    assert error.step == "3/4 RUN ./mvnw package"
    assert str(error) == (
        "image build failed at step 3/4 RUN ./mvnw package: The command '/bin/sh -c ./mvnw "
        "package' returned a non-zero code: 1\n"
        "  [INFO] Building shop 1.0\n"
        "  [ERROR] COMPILATION ERROR: Shop.java:[12,5] ';' expected\n"
        "  [ERROR] BUILD FAILURE"
    )
    assert error.hint and "Dockerfile" in error.hint
    # every line reached the run log as it came, without terminal colours, the error last
    assert "[ERROR] BUILD FAILURE" in seen
    assert seen[-1].startswith("ERROR: The command '/bin/sh -c ./mvnw package'")
    assert not any("\x1b" in line for line in seen)


def test_an_error_before_any_step_and_a_stream_without_an_image() -> None:
    log = BuildLog()
    log.feed({"error": "Cannot locate specified Dockerfile: Dockerfile"})
    with pytest.raises(BuildFailed, match="before the first step: Cannot locate"):
        log.finish()
    quiet = BuildLog()
    quiet.feed({"stream": "Step 1/1 : FROM scratch\n"})
    with pytest.raises(BuildFailed, match="ended without an image id"):
        quiet.finish()


def test_error_lines_are_the_failing_steps_last_twenty() -> None:
    log = BuildLog()
    log.feed({"stream": "Step 1/2 : RUN make\n"})
    log.feed({"stream": "".join(f"line {i}\n" for i in range(50))})
    log.feed({"error": "exit 2"})
    with pytest.raises(BuildFailed) as caught:
        log.finish()
    assert caught.value.output == [f"line {i}" for i in range(30, 50)]


# -- push, engine, artifact ---------------------------------------------------------------------


def test_push_credentials_for_the_engine() -> None:
    settings = RegistrySettings(
        url="http://127.0.0.61:5000", username="ci", password=SecretStr("s3cret")
    )
    assert auth_config(settings) == {
        "username": "ci",
        "password": "s3cret",
        "serveraddress": "127.0.0.61:5000",
    }
    assert auth_config(RegistrySettings(url="https://r.example.com")) is None


def test_build_engine_url() -> None:
    assert build_engine_url({}) == "unix:///var/run/docker.sock"
    assert build_engine_url({"DOCKER_HOST": "tcp://d:2376"}) == "tcp://d:2376"
    env = {"DOCKER_HOST": "tcp://d:2376", "QUAYSIDE_BUILD_DOCKER_HOST": "ssh://ci@builder"}
    assert build_engine_url(env) == "ssh://ci@builder"


def _tar(name: str, data: bytes | None = None, link: str | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo(name)
        if link is not None:
            info.type, info.linkname = tarfile.SYMTYPE, link
            archive.addfile(info)
        elif data is None:
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        else:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_artifact_checksum_from_a_tar_stream_in_small_chunks() -> None:
    data = b"war " * 300_000
    raw = _tar("shop.war", data)
    chunks = iter([raw[i : i + 4096] for i in range(0, len(raw), 4096)])
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert sha256_of_tar_file(chunks, "/app/shop.war") == expected


def test_artifact_that_is_a_link_or_a_directory_refused() -> None:
    with pytest.raises(ArtifactMissing, match="is a link to /opt/shop-1.war"):
        sha256_of_tar_file(iter([_tar("shop.war", link="/opt/shop-1.war")]), "/app/shop.war")
    with pytest.raises(ArtifactMissing, match="not a regular file"):
        sha256_of_tar_file(iter([_tar("app")]), "/app")


# -- inventory: target and registry credentials -------------------------------------------------


def _inventory(**registry: Any) -> Inventory:
    return Inventory.model_validate(
        {
            "secrets": {"reg": {"env": "QS_UNIT_REGISTRY_PASSWORD"}},
            "apps": {
                "shop": {
                    "image": {"build": {"artifact_path": "/app/shop.war"}},
                    "environments": {
                        "test": {"registry": {"url": "http://127.0.0.61:5000",
                                              "repository": "team/shop", **registry}},
                        "prod": {},
                    },
                },
                "web": {"environments": {"test": {}}},
            },
        }
    )  # fmt: skip


def test_registry_password_from_the_inventory_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = _inventory(username="ci", password_secret="reg")
    monkeypatch.setenv("QS_UNIT_REGISTRY_PASSWORD", "pw")
    settings = registry_settings(inventory, "shop", "test", secrets=secret_value)
    assert settings.username == "ci" and settings.password is not None
    assert settings.password.get_secret_value() == "pw"
    assert "pw" not in repr(settings)
    monkeypatch.delenv("QS_UNIT_REGISTRY_PASSWORD")
    with pytest.raises(ConfigError, match="QS_UNIT_REGISTRY_PASSWORD is not set"):
        registry_settings(inventory, "shop", "test", secrets=secret_value)


def test_registry_refusals_name_the_key_path() -> None:
    with pytest.raises(ConfigError, match=r"environments\.test\.registry\.password_secret: no "):
        registry_settings(
            _inventory(username="ci", password_secret="nope"), "shop", "test", secrets=secret_value
        )
    with pytest.raises(ConfigError, match="username 'ci' has no password_secret"):
        registry_settings(_inventory(username="ci"), "shop", "test", secrets=secret_value)
    with pytest.raises(ConfigError, match=r"apps\.shop\.environments\.prod\.registry: not set"):
        registry_settings(_inventory(), "shop", "prod", secrets=secret_value)
    assert (
        registry_settings(_inventory(), "shop", "test", secrets=secret_value).username is None
    )  # anonymous


def test_build_target_refusals() -> None:
    inventory = _inventory()
    app, image = build_target(inventory, "shop", "test")
    assert image.build.artifact_path == "/app/shop.war" and app.image is image
    with pytest.raises(NotFoundError, match=r"unknown app 'nope' \(apps: shop, web\)"):
        build_target(inventory, "nope", "test")
    with pytest.raises(NotFoundError, match=r"no environment 'qa' \(environments: prod, test\)"):
        build_target(inventory, "shop", "qa")
    with pytest.raises(ConfigError, match=r"apps\.web\.image: not set"):
        build_target(inventory, "web", "test")


def test_summary_names_the_digest_version_and_artifact() -> None:
    result = BuildResult(
        image="127.0.0.61:5000/team/shop:1.0.1", version="1.0.1", digest="sha256:" + "ab" * 32,
        image_id="sha256:" + "cd" * 32, labels={}, artifact_path="/app/shop.war",
        artifact_sha256="sha256:" + "ef" * 32, steps=["a", "b", "c"], cached_steps=["a", "b"],
    )  # fmt: skip
    text = summary_markdown("shop", "test", "main", SHA, "main is not a version tag", result)
    assert "`sha256:" + "ab" * 32 + "`" in text
    assert "2 of 3 steps" in text
    assert "`sha256:" + "ef" * 32 + "`" in text
    assert "`127.0.0.61:5000/team/shop@sha256:" + "ab" * 32 + "`" in text


@pytest.mark.parametrize(
    "module",
    ["quayside.images.versions", "quayside.images.build_request",
     "quayside.images.build_stream", "quayside.images.engine_build"],
)  # fmt: skip
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
