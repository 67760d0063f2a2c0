"""The distribution API requests a copy needs, as data: method, path, query, headers and the
token scopes each needs. Names are validated here, so nothing unchecked reaches a URL. The
client (:mod:`quayside.registry.client`) sends them."""

from __future__ import annotations

from dataclasses import dataclass, field

from quayside.registry.auth import repository_scope
from quayside.registry.manifests import ACCEPT
from quayside.registry.names import check_digest, check_reference, check_repository

PULL = ("pull",)
PUSH = ("pull", "push")


@dataclass(frozen=True)
class ApiRequest:
    """One request to a registry, relative to its base URL (or to ``url`` when absolute:
    upload locations the registry handed out)."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    scopes: tuple[str, ...] = field(default=())


def ping() -> ApiRequest:
    """``GET /v2/``: is this a registry, and which auth does it want."""
    return ApiRequest("GET", "/v2/")


def manifest(repository: str, reference: str, method: str = "GET") -> ApiRequest:
    """``GET``/``HEAD /v2/<name>/manifests/<reference>`` accepting every copied type."""
    check_repository(repository)
    check_reference(reference)
    return ApiRequest(
        method,
        f"/v2/{repository}/manifests/{reference}",
        headers=(("Accept", ACCEPT),),
        scopes=(repository_scope(repository, PULL),),
    )


def put_manifest(repository: str, reference: str, media_type: str) -> ApiRequest:
    """``PUT /v2/<name>/manifests/<reference>`` with the manifest's own media type."""
    check_repository(repository)
    check_reference(reference)
    return ApiRequest(
        "PUT",
        f"/v2/{repository}/manifests/{reference}",
        headers=(("Content-Type", media_type),),
        scopes=(repository_scope(repository, PUSH),),
    )


def blob(repository: str, digest: str, method: str = "GET") -> ApiRequest:
    """``HEAD``/``GET /v2/<name>/blobs/<digest>``."""
    check_repository(repository)
    check_digest(digest)
    return ApiRequest(
        method,
        f"/v2/{repository}/blobs/{digest}",
        scopes=(repository_scope(repository, PULL),),
    )


def start_upload(repository: str) -> ApiRequest:
    """``POST /v2/<name>/blobs/uploads/``: open an upload session (202 + Location)."""
    check_repository(repository)
    return ApiRequest(
        "POST",
        f"/v2/{repository}/blobs/uploads/",
        headers=(("Content-Length", "0"),),
        scopes=(repository_scope(repository, PUSH),),
    )


def mount_blob(repository: str, digest: str, from_repository: str) -> ApiRequest:
    """``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>``: link a blob another
    repository of the same registry holds (201), or get an upload session instead (202)."""
    check_repository(repository)
    check_repository(from_repository)
    check_digest(digest)
    return ApiRequest(
        "POST",
        f"/v2/{repository}/blobs/uploads/",
        params=(("mount", digest), ("from", from_repository)),
        headers=(("Content-Length", "0"),),
        scopes=(
            repository_scope(repository, PUSH),
            repository_scope(from_repository, PULL),
        ),
    )


def upload_chunk(repository: str, location: str, start: int, length: int) -> ApiRequest:
    """``PATCH <location>`` carrying bytes ``start`` … ``start+length-1`` of the blob."""
    if length <= 0 or start < 0:
        raise ValueError(f"bad chunk: start {start}, length {length}")
    return ApiRequest(
        "PATCH",
        location,
        headers=(
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", f"{start}-{start + length - 1}"),
            ("Content-Length", str(length)),
        ),
        scopes=(repository_scope(repository, PUSH),),
    )


def finish_upload(repository: str, location: str, digest: str) -> ApiRequest:
    """``PUT <location>?digest=<digest>`` (no body): close the upload; the registry checks
    the digest of everything it received."""
    check_digest(digest)
    return ApiRequest(
        "PUT",
        location,
        params=(("digest", digest),),
        headers=(("Content-Length", "0"),),
        scopes=(repository_scope(repository, PUSH),),
    )


def cancel_upload(repository: str, location: str) -> ApiRequest:
    """``DELETE <location>``: drop an upload whose content turned out wrong."""
    return ApiRequest("DELETE", location, scopes=(repository_scope(repository, PUSH),))
