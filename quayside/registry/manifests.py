"""Manifests as the registry stores them: media types, what a manifest references (its
config and layers, or an index's child manifests), and digests of the exact bytes — a copy
never re-serializes a manifest, because that would change its digest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
#: The Accept header of every manifest request: without the index types a registry may
#: answer a multi-platform image with one platform's manifest, whose digest differs.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The digest of ``data`` with ``algorithm`` (``sha256`` or ``sha512``)."""
    return f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """A reference to content by digest: a blob (config, layer) or a child manifest."""

    media_type: str
    digest: str
    size: int
    platform: str | None = None

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Descriptor:
        platform = item.get("platform")
        shown = None
        if isinstance(platform, dict):
            shown = "/".join(
                str(platform[k]) for k in ("os", "architecture", "variant") if platform.get(k)
            )
        return cls(str(item.get("mediaType", "")), str(item["digest"]), int(item["size"]), shown)


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes, media type and digest, and what it references."""

    media_type: str
    body: bytes
    digest: str
    blobs: tuple[Descriptor, ...] = ()
    """config then layers (an image manifest)"""
    children: tuple[Descriptor, ...] = ()
    """child manifests (an index / manifest list)"""

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def parse_manifest(body: bytes, content_type: str | None, digest: str) -> Manifest:
    """The :class:`Manifest` of ``body`` as served with ``content_type``.

    The media type comes from the body's ``mediaType`` when it has one (OCI makes the field
    optional; then the Content-Type header decides).

    Raises:
        ValueError: not JSON, or a media type this client does not copy (schema 1, unknown).
    """
    try:
        data = json.loads(body)
    except ValueError as e:
        raise ValueError(f"the manifest is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError("the manifest is not a JSON object")
    header_type = (content_type or "").split(";", 1)[0].strip()
    media_type = str(data.get("mediaType") or header_type)
    if not media_type:
        media_type = OCI_INDEX if "manifests" in data else OCI_MANIFEST
    if media_type in INDEX_TYPES:
        children = tuple(Descriptor.from_json(m) for m in data.get("manifests", []))
        return Manifest(media_type, body, digest, children=children)
    if media_type in IMAGE_TYPES:
        blobs = [Descriptor.from_json(data["config"])] if "config" in data else []
        blobs += [Descriptor.from_json(layer) for layer in data.get("layers", [])]
        return Manifest(media_type, body, digest, blobs=tuple(blobs))
    raise ValueError(f"manifest media type {media_type!r} is not copied (OCI or Docker v2 only)")


def image_manifest(
    config: Descriptor, layers: list[Descriptor], media_type: str = DOCKER_MANIFEST
) -> bytes:
    """The bytes of an image manifest (Docker v2 schema 2 or OCI) for ``config`` + ``layers``."""
    docker = media_type == DOCKER_MANIFEST
    config_type = (
        "application/vnd.docker.container.image.v1+json"
        if docker
        else "application/vnd.oci.image.config.v1+json"
    )
    layer_type = (
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        if docker
        else "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config.digest, "size": config.size},
        "layers": [
            {"mediaType": layer_type, "digest": layer.digest, "size": layer.size}
            for layer in layers
        ],
    }
    return json.dumps(doc, indent=2).encode()


def image_index(
    children: list[tuple[Descriptor, dict[str, str]]], media_type: str = OCI_INDEX
) -> bytes:
    """The bytes of an index (OCI) or manifest list (Docker) of ``(manifest, platform)``."""
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {
                "mediaType": child.media_type,
                "digest": child.digest,
                "size": child.size,
                "platform": platform,
            }
            for child, platform in children
        ],
    }
    return json.dumps(doc, indent=2).encode()
