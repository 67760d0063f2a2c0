"""Manifests read as the registry serves them: what an image or an index references, and
the media types a copy refuses (schema 1)."""

from __future__ import annotations

import json

import pytest

from quayside.registry.copy import BlobStep, CopyPlan
from quayside.registry.manifests import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    image_index,
    image_manifest,
    parse_manifest,
    sha256_digest,
)

CONFIG = Descriptor("", "sha256:" + "1" * 64, 100)
LAYER = Descriptor("", "sha256:" + "2" * 64, 2_000_000)


def test_an_image_references_its_config_then_its_layers() -> None:
    body = image_manifest(CONFIG, [LAYER], OCI_MANIFEST)
    manifest = parse_manifest(body, None, sha256_digest(body))
    assert manifest.media_type == OCI_MANIFEST and not manifest.is_index
    assert [b.digest for b in manifest.blobs] == [CONFIG.digest, LAYER.digest]
    assert manifest.body == body  # bytes kept as served


def test_an_index_references_its_children_with_platforms() -> None:
    child = Descriptor(DOCKER_MANIFEST, "sha256:" + "3" * 64, 500)
    body = image_index([(child, {"os": "linux", "architecture": "arm64", "variant": "v8"})])
    manifest = parse_manifest(body, OCI_INDEX, sha256_digest(body))
    assert manifest.is_index and manifest.blobs == ()
    assert manifest.children[0].digest == child.digest
    assert manifest.children[0].platform == "linux/arm64/v8"


def test_the_content_type_decides_when_the_body_has_no_media_type() -> None:
    body = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert parse_manifest(body, f"{OCI_INDEX}; charset=utf-8", "sha256:x").is_index


def test_schema1_and_garbage_are_refused() -> None:
    schema1 = json.dumps(
        {"schemaVersion": 1, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"}
    ).encode()
    with pytest.raises(ValueError, match="not copied"):
        parse_manifest(schema1, None, "sha256:x")
    with pytest.raises(ValueError, match="not JSON"):
        parse_manifest(b"<html>", "text/html", "sha256:x")


def test_a_plan_summary_counts_what_the_copy_will_do() -> None:
    body = image_manifest(CONFIG, [LAYER])
    manifest = parse_manifest(body, None, sha256_digest(body))
    plan = CopyPlan(
        manifest.digest,
        (manifest,),
        (BlobStep(CONFIG, "present"), BlobStep(LAYER, "upload")),
        False,
    )
    assert plan.upload_bytes == 2_000_000
    assert plan.summary() == (
        f"image {manifest.digest}: 1 manifest(s), 2 blob(s) — 1 present, 0 to mount, "
        "1 to upload (2.0 MB)"
    )
