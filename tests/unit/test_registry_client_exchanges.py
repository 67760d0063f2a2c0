"""The client against registry exchanges built from the distribution spec (docs/spec/api.md,
docs/spec/auth/token.md): the Bearer token flow, refusals turned into errors that name the
registry and the user but never the password, content that does not match its digest, and a
target that resolves the copied digest to another one. The HTTP side is an httpx
MockTransport answering as the spec says; the real registries are in tests/hosts."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from quayside.registry import (
    DigestMismatch,
    ManifestNotFound,
    RegistryAuthError,
    RegistryClient,
    RegistrySettings,
)
from quayside.registry.copy import verify_copy
from quayside.registry.manifests import DOCKER_MANIFEST, sha256_digest

PASSWORD = "s3cret-robot-token"
REGISTRY = "https://registry.example.com"
REALM = "https://auth.example.com/token"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "x", "digest": "sha256:" + "1" * 64, "size": 2},
        "layers": [],
    }
).encode()
DIGEST = sha256_digest(MANIFEST)


def settings(password: str = PASSWORD) -> RegistrySettings:
    return RegistrySettings(url=REGISTRY, username="robot", password=SecretStr(password))


def client(handler: Callable[[httpx.Request], httpx.Response], **kw: str) -> RegistryClient:
    return RegistryClient(settings(**kw), transport=httpx.MockTransport(handler))


def token_registry(log: list[str], password: str = PASSWORD) -> Callable:
    """A registry with a token service, as in the token spec's sequence diagram."""
    good = "Basic " + base64.b64encode(f"robot:{password}".encode()).decode()

    def handle(request: httpx.Request) -> httpx.Response:
        log.append(f"{request.method} {request.url}")
        if request.url.host == "auth.example.com":
            if request.headers.get("Authorization") != good:
                return httpx.Response(401, json={"details": "incorrect username or password"})
            scopes = request.url.params.get_list("scope")
            return httpx.Response(200, json={"token": "tok:" + ",".join(scopes)})
        wanted = "tok:repository:shop/web:pull"
        if request.headers.get("Authorization") != f"Bearer {wanted}":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": f'Bearer realm="{REALM}",service="registry.example.com",'
                    'scope="repository:shop/web:pull"'
                },
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            )
        return httpx.Response(
            200,
            headers={"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": DIGEST},
            content=MANIFEST,
        )

    return handle


def test_bearer_flow_gets_a_token_for_the_scope_and_reuses_it() -> None:
    log: list[str] = []
    with client(token_registry(log)) as registry:
        first = registry.get_manifest("shop/web", DIGEST)
        registry.get_manifest("shop/web", DIGEST)
    assert first.digest == DIGEST and first.media_type == DOCKER_MANIFEST
    token_calls = [line for line in log if "auth.example.com" in line]
    assert len(token_calls) == 1
    assert "service=registry.example.com" in token_calls[0]
    assert "scope=repository%3Ashop%2Fweb%3Apull" in token_calls[0]


def test_a_refused_token_names_registry_and_user_not_the_password() -> None:
    log: list[str] = []
    with client(token_registry(log), password="wrong-password") as registry:
        with pytest.raises(RegistryAuthError) as caught:
            registry.get_manifest("shop/web", DIGEST)
    message = str(caught.value)
    assert "registry.example.com" in message and "'robot'" in message
    assert "wrong-password" not in message and PASSWORD not in message
    assert "password" in (caught.value.hint or "")


def test_basic_401_is_wrong_credentials() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    with client(handle) as registry:
        with pytest.raises(RegistryAuthError, match="refused user 'robot'") as caught:
            registry.login()
    assert PASSWORD not in str(caught.value)


def test_a_missing_manifest_names_repository_digest_and_registry() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})

    with client(handle) as registry:
        with pytest.raises(ManifestNotFound) as caught:
            registry.get_manifest("shop/web", DIGEST)
    assert f"shop/web@{DIGEST}" in str(caught.value)
    assert "registry.example.com" in str(caught.value)


def test_manifest_bytes_that_do_not_hash_to_the_digest_are_refused() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Type": DOCKER_MANIFEST}, content=MANIFEST + b" "
        )

    with client(handle) as registry:
        with pytest.raises(DigestMismatch, match="served content with digest"):
            registry.get_manifest("shop/web", DIGEST)


def test_a_target_resolving_another_digest_is_refused() -> None:
    other = "sha256:" + "9" * 64

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Docker-Content-Digest": other})

    with client(handle) as registry:
        with pytest.raises(DigestMismatch) as caught:
            verify_copy(registry, "shop/web", DIGEST, "1.0.0")
    assert other in str(caught.value) and DIGEST in str(caught.value)
    assert "not accepted" in str(caught.value)


def test_settings_accept_only_a_base_url_and_hide_the_password() -> None:
    assert RegistrySettings(url="http://127.0.0.61:5000/").url == "http://127.0.0.61:5000"
    for bad in ["ftp://x", "http://x/v2/", "127.0.0.1:5000", "http://a b"]:
        with pytest.raises(ValueError):
            RegistrySettings(url=bad)
    assert PASSWORD not in repr(settings()) and PASSWORD not in str(settings().model_dump())
