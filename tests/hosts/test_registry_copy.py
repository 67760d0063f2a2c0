"""Copy by digest between two real registries (Debian docker-registry, htpasswd auth): the
digest at the target is confirmed with skopeo, an independent client; the registries' own
access logs say what was uploaded or mounted."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from typing import Any

import pytest

from quayside.registry import (
    ImageLocation,
    ManifestNotFound,
    RegistryAuthError,
    RegistryUnreachable,
    copy_image,
)
from quayside.registry.manifests import Descriptor
from testbed.registry import (
    RegistryPair,
    RegistryServer,
    blob_mounts,
    blob_uploads,
    push_test_image,
    push_test_index,
)

KB = 1024


def repo(prefix: str) -> str:
    return f"{prefix}/app-{secrets.token_hex(4)}"


def skopeo(server: RegistryServer, *args: str) -> str:
    """``skopeo inspect`` against ``server`` with its credentials (plain HTTP)."""
    from testbed.require import need_binary

    binary = need_binary("skopeo", "skopeo")
    out = subprocess.run(
        [
            binary,
            "inspect",
            "--tls-verify=false",
            f"--creds={server.username}:{server.password}",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out.stdout.decode()


def skopeo_raw_digest(server: RegistryServer, name: str) -> str:
    """The sha256 of the manifest bytes skopeo reads for ``name`` (repo@digest or repo:tag)."""
    raw = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"--creds={server.username}:{server.password}",
            f"docker://{server.host}/{name}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def locations(pair: RegistryPair, source_repo: str, target_repo: str) -> tuple[Any, Any]:
    return (
        ImageLocation(pair.source.settings(), source_repo),
        ImageLocation(pair.target.settings(), target_repo),
    )


def test_copy_single_platform_image_keeps_the_digest(registries: RegistryPair) -> None:
    name = repo("shop")
    image = push_test_image(registries.source.settings(), name, [40 * KB, 300 * KB, 5 * KB])
    source = ImageLocation(registries.source.settings(), name)
    target = ImageLocation(registries.target.settings(chunk_size=64 * KB), name)
    mark = registries.target.log_mark()

    result = copy_image(source, target, image.digest, tag="1.0.0")

    assert result.digest == image.digest
    assert len(result.uploaded) == 4 and result.present == [] and result.mounted == []
    logged = registries.target.requests_since(mark)
    assert len(blob_uploads(logged)) == 4
    sizes = _blob_sizes(registries.source, name, image)
    patches = [line for line in logged if line.method == "PATCH" and line.status == 202]
    assert len(patches) == sum(-(-size // (64 * KB)) for size in sizes)  # chunks of 64 KiB
    assert result.bytes_uploaded == sum(sizes)
    assert skopeo_raw_digest(registries.target, f"{name}@{image.digest}") == image.digest
    inspected = json.loads(
        skopeo(registries.target, f"docker://{registries.target.host}/{name}:1.0.0")
    )
    assert inspected["Digest"] == image.digest
    assert inspected["Architecture"] == "amd64"


def test_copy_two_platform_index_with_every_child(registries: RegistryPair) -> None:
    name = repo("shop")
    settings = registries.source.settings()
    amd64 = push_test_image(settings, name, [64 * KB, 8 * KB], platform=("linux", "amd64"))
    arm64 = push_test_image(settings, name, [64 * KB, 8 * KB], platform=("linux", "arm64"))
    index = push_test_index(
        settings, name, [(amd64, ("linux", "amd64")), (arm64, ("linux", "arm64"))], tag="2.0.0"
    )
    source, target = locations(registries, name, f"{name}-prod")

    result = copy_image(source, target, index, tag="2.0.0")

    assert result.manifests == [amd64.digest, arm64.digest, index]
    assert len(result.uploaded) == 6  # 2 configs + 4 layers
    target_name = f"{name}-prod"
    assert skopeo_raw_digest(registries.target, f"{target_name}@{index}") == index
    assert skopeo_raw_digest(registries.target, f"{target_name}:2.0.0") == index
    for child in (amd64, arm64):
        assert skopeo_raw_digest(registries.target, f"{target_name}@{child.digest}") == child.digest
    arm = json.loads(
        skopeo(
            registries.target,
            "--override-arch=arm64",
            f"docker://{registries.target.host}/{target_name}:2.0.0",
        )
    )
    assert arm["Architecture"] == "arm64"


def test_warm_copy_uploads_no_blob(registries: RegistryPair) -> None:
    name = repo("warm")
    image = push_test_image(registries.source.settings(), name, [32 * KB, 32 * KB])
    source, target = locations(registries, name, name)
    copy_image(source, target, image.digest)
    mark = registries.target.log_mark()

    again = copy_image(source, target, image.digest, tag="latest")

    logged = registries.target.requests_since(mark)
    assert again.uploaded == [] and again.mounted == [] and len(again.present) == 3
    assert blob_uploads(logged) == []
    assert [line for line in logged if line.method == "PATCH"] == []
    assert skopeo_raw_digest(registries.target, f"{name}:latest") == image.digest


def test_same_registry_copy_mounts_blobs(registries: RegistryPair) -> None:
    name = repo("team")
    settings = registries.source.settings()
    image = push_test_image(settings, name, [128 * KB, 16 * KB])
    mark = registries.source.log_mark()

    result = copy_image(
        ImageLocation(settings, name), ImageLocation(settings, f"{name}-release"), image.digest
    )

    logged = registries.source.requests_since(mark)
    assert sorted(result.mounted) == sorted(
        [image_blob for image_blob in _blob_digests(registries.source, name, image)]
    )
    assert result.uploaded == [] and result.bytes_uploaded == 0
    assert len(blob_mounts(logged)) == 3 and blob_uploads(logged) == []
    assert skopeo_raw_digest(registries.source, f"{name}-release@{image.digest}") == image.digest


def _blob_digests(server: RegistryServer, name: str, image: Descriptor) -> list[str]:
    raw = skopeo(server, "--raw", f"docker://{server.host}/{name}@{image.digest}")
    manifest = json.loads(raw)
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


def _blob_sizes(server: RegistryServer, name: str, image: Descriptor) -> list[int]:
    manifest = json.loads(skopeo(server, "--raw", f"docker://{server.host}/{name}@{image.digest}"))
    return [manifest["config"]["size"], *(layer["size"] for layer in manifest["layers"])]


def test_wrong_credentials_name_the_registry_and_the_user(registries: RegistryPair) -> None:
    name = repo("auth")
    image = push_test_image(registries.source.settings(), name, [4 * KB])
    source = ImageLocation(registries.source.settings(), name)
    target = ImageLocation(registries.target.settings(password="not-the-password"), name)

    with pytest.raises(RegistryAuthError) as caught:
        copy_image(source, target, image.digest)

    message = str(caught.value)
    assert registries.target.host in message
    assert repr(registries.target.username) in message
    assert "not-the-password" not in message
    assert registries.target.password not in message
    assert caught.value.hint and "password" in caught.value.hint


def test_missing_digest_at_the_source_is_named(registries: RegistryPair) -> None:
    name = repo("missing")
    push_test_image(registries.source.settings(), name, [4 * KB])
    absent = "sha256:" + "0" * 64
    source, target = locations(registries, name, name)

    with pytest.raises(ManifestNotFound) as caught:
        copy_image(source, target, absent)

    assert absent in str(caught.value) and registries.source.host in str(caught.value)
    assert name in str(caught.value)


def test_target_down_mid_copy_then_retry_uploads_only_what_is_missing(
    registries: RegistryPair,
) -> None:
    name = repo("outage")
    image = push_test_image(registries.source.settings(), name, [200 * KB] * 5)
    source = ImageLocation(registries.source.settings(max_parallel_blobs=1), name)
    target = ImageLocation(registries.target.settings(max_parallel_blobs=1), name)
    first: list[str] = []

    def stop_after_two(blob: Descriptor, action: str) -> None:
        first.append(blob.digest)
        if len(first) == 2:
            registries.target.stop()

    try:
        with pytest.raises(RegistryUnreachable) as caught:
            copy_image(source, target, image.digest, on_blob=stop_after_two)
        assert registries.target.host in str(caught.value)
    finally:
        registries.target.start()
    assert skopeo_has_no(registries.target, f"{name}@{image.digest}")

    retry = copy_image(source, target, image.digest)

    every = set(_blob_digests(registries.source, name, image))
    assert len(first) == 2
    assert set(retry.present) == set(first)
    assert set(retry.uploaded) == every - set(first)
    assert skopeo_raw_digest(registries.target, f"{name}@{image.digest}") == image.digest


def skopeo_has_no(server: RegistryServer, name: str) -> bool:
    out = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"--creds={server.username}:{server.password}",
            f"docker://{server.host}/{name}",
        ],
        capture_output=True,
        timeout=60,
    )
    return out.returncode != 0
