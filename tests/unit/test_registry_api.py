"""The distribution API requests as data: paths, Accept and Content-Range headers, mount
parameters and the token scopes each request needs."""

from __future__ import annotations

import pytest

from quayside.registry import InvalidImageName, api
from quayside.registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
)

DIGEST = "sha256:" + "cd" * 32
LOCATION = "http://127.0.0.62:5000/v2/shop/web/blobs/uploads/uuid?_state=abc"


def test_manifest_requests_accept_every_index_and_image_type() -> None:
    request = api.manifest("shop/web", DIGEST, "HEAD")
    assert (request.method, request.path) == ("HEAD", f"/v2/shop/web/manifests/{DIGEST}")
    accept = dict(request.headers)["Accept"]
    for media_type in (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST):
        assert media_type in accept
    assert request.scopes == ("repository:shop/web:pull",)


def test_put_manifest_carries_the_manifest_media_type_and_push_scope() -> None:
    request = api.put_manifest("shop/web", "1.0.0", OCI_INDEX)
    assert (request.method, request.path) == ("PUT", "/v2/shop/web/manifests/1.0.0")
    assert dict(request.headers)["Content-Type"] == OCI_INDEX
    assert request.scopes == ("repository:shop/web:pull,push",)


def test_blob_head_and_upload_start() -> None:
    assert api.blob("shop/web", DIGEST, "HEAD").path == f"/v2/shop/web/blobs/{DIGEST}"
    start = api.start_upload("shop/web")
    assert (start.method, start.path, start.params) == ("POST", "/v2/shop/web/blobs/uploads/", ())


def test_mount_names_digest_and_source_repository_and_asks_pull_on_it() -> None:
    request = api.mount_blob("shop/web-prod", DIGEST, "shop/web")
    assert request.method == "POST"
    assert request.path == "/v2/shop/web-prod/blobs/uploads/"
    assert request.params == (("mount", DIGEST), ("from", "shop/web"))
    assert set(request.scopes) == {
        "repository:shop/web-prod:pull,push",
        "repository:shop/web:pull",
    }


def test_chunks_carry_an_inclusive_content_range() -> None:
    first = dict(api.upload_chunk("shop/web", LOCATION, 0, 1024).headers)
    later = dict(api.upload_chunk("shop/web", LOCATION, 1024, 10).headers)
    assert first["Content-Range"] == "0-1023" and first["Content-Length"] == "1024"
    assert later["Content-Range"] == "1024-1033"
    assert first["Content-Type"] == "application/octet-stream"
    assert api.upload_chunk("shop/web", LOCATION, 0, 1).path == LOCATION
    with pytest.raises(ValueError):
        api.upload_chunk("shop/web", LOCATION, 0, 0)


def test_finish_puts_the_digest_on_the_location() -> None:
    request = api.finish_upload("shop/web", LOCATION, DIGEST)
    assert (request.method, request.path, request.params) == (
        "PUT",
        LOCATION,
        (("digest", DIGEST),),
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: api.manifest("shop/web;id", "1.0"),
        lambda: api.manifest("shop/web", "1.0 && id"),
        lambda: api.put_manifest("shop/web", "$(id)", OCI_INDEX),
        lambda: api.blob("shop/web", "sha256:../../etc/passwd"),
        lambda: api.mount_blob("shop/web", DIGEST, "../other"),
        lambda: api.finish_upload("shop/web", LOCATION, "sha256:zz"),
    ],
)
def test_nothing_unchecked_reaches_a_path(build: object) -> None:
    with pytest.raises(InvalidImageName):
        build()  # type: ignore[operator]
