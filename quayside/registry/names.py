"""Repository names, tags and digests, checked against the OCI distribution spec grammar
before they reach a URL — so a name with a shell metacharacter, a space or ``..`` is refused
with the rule it breaks, never sent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from quayside.registry.errors import InvalidImageName

#: distribution-spec ``<name>``: path components joined by ``/``.
REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
#: the digest algorithms a registry verifies, with their encoded lengths
DIGEST = re.compile(r"(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
#: a registry host: DNS name or IPv4 address, optional port (no scheme, no path)
REGISTRY_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
)
MAX_REPOSITORY = 255


def _shown(value: str) -> str:
    return repr(value[:80] + ("…" if len(value) > 80 else ""))


def check_repository(name: str) -> str:
    """``name`` if it is a valid repository name.

    Raises:
        InvalidImageName: it is not (the message says which rule).
    """
    if not name:
        raise InvalidImageName("repository name is empty")
    if len(name) > MAX_REPOSITORY:
        raise InvalidImageName(
            f"repository name {_shown(name)} is longer than {MAX_REPOSITORY} characters"
        )
    if REPOSITORY.fullmatch(name) is None:
        raise InvalidImageName(
            f"repository name {_shown(name)} is not valid: lowercase letters, digits and "
            "separators (. _ __ -) between them, components joined by '/'"
        )
    return name


def check_tag(tag: str) -> str:
    """``tag`` if it is a valid tag.

    Raises:
        InvalidImageName: it is not.
    """
    if TAG.fullmatch(tag) is None:
        raise InvalidImageName(
            f"tag {_shown(tag)} is not valid: letters, digits, '_', '.', '-' (not first), "
            "at most 128 characters"
        )
    return tag


def check_digest(digest: str) -> str:
    """``digest`` if it is ``sha256:<64 hex>`` or ``sha512:<128 hex>``.

    Raises:
        InvalidImageName: it is not.
    """
    if DIGEST.fullmatch(digest) is None:
        raise InvalidImageName(
            f"digest {_shown(digest)} is not valid: expected sha256: and 64 lowercase hex digits"
        )
    return digest


def check_reference(reference: str) -> str:
    """A manifest reference: a digest (has ``:``) or a tag.

    Raises:
        InvalidImageName: it is neither.
    """
    return check_digest(reference) if ":" in reference else check_tag(reference)


@dataclass(frozen=True)
class ImageName:
    """``registry/repository`` plus a tag and/or a digest, each validated."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if REGISTRY_HOST.fullmatch(self.registry) is None:
            raise InvalidImageName(f"registry {_shown(self.registry)} is not a host[:port]")
        check_repository(self.repository)
        if self.tag is not None:
            check_tag(self.tag)
        if self.digest is not None:
            check_digest(self.digest)

    @property
    def reference(self) -> str:
        """The digest if known, else the tag (what a manifest request names)."""
        if self.digest is not None:
            return self.digest
        if self.tag is not None:
            return self.tag
        raise InvalidImageName(f"{self.registry}/{self.repository} has neither tag nor digest")

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_image_name(text: str) -> ImageName:
    """``host[:port]/repo/path[:tag][@digest]`` → :class:`ImageName` (the registry part is
    required: images move between named registries here, never an implicit Docker Hub).

    Raises:
        InvalidImageName: any part breaks the grammar.
    """
    rest, _, digest = text.partition("@")
    registry, slash, path = rest.partition("/")
    if not slash or not path:
        raise InvalidImageName(f"image {_shown(text)} has no registry/repository part")
    repository, tag = path, None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = path.rpartition(":")
    return ImageName(registry, repository, tag, digest or None)
