"""Which version an image build gets: the git tag when it is a version (``v1.2.3`` or
``1.2.3``), else the next patch after the app's newest recorded version (``0.0.1`` for the
first). Versions are immutable: a version built once names that build's code for good, so a
tag moved to other code is refused instead of rebuilt under the same name.

Pure functions; the recorded versions come from :mod:`quayside.ledger.image_builds`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from quayside.images.errors import VersionRefused

_SEMVER = re.compile(r"v?(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})")


class Version(NamedTuple):
    """``major.minor.patch``, ordered as numbers (``1.10.0`` after ``1.9.9``)."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def next_patch(self) -> Version:
        return Version(self.major, self.minor, self.patch + 1)


def parse_version(text: str) -> Version | None:
    """The version ``text`` names (``v1.2.3`` or ``1.2.3``), or None when it is no version.

    >>> parse_version("v1.2.3"), parse_version("1.10.0"), parse_version("main")
    (Version(major=1, minor=2, patch=3), Version(major=1, minor=10, patch=0), None)
    >>> parse_version("1.2.3-rc1") is None, parse_version("01.2.3") is None
    (True, True)
    """
    match = _SEMVER.fullmatch(text)
    if match is None:
        return None
    return Version(int(match[1]), int(match[2]), int(match[3]))


def newest(versions: Iterable[str]) -> Version | None:
    """The highest of ``versions`` that are versions (others are ignored)."""
    parsed = [v for v in (parse_version(t) for t in versions) if v is not None]
    return max(parsed) if parsed else None


@dataclass(frozen=True)
class VersionChoice:
    """The version of a build and why (shown in the run log and the summary)."""

    version: Version
    reason: str

    @property
    def tag(self) -> str:
        """The image tag: the version without a ``v``."""
        return str(self.version)


def choose_version(ref: str, *, ref_is_tag: bool, recorded: Iterable[str]) -> VersionChoice:
    """The version a build of ``ref`` gets.

    Args:
        ref: the git ref being built.
        ref_is_tag: ``ref`` is a tag of the repository (a branch named ``1.2.3`` is no version).
        recorded: the app's versions built so far.

    >>> choose_version("v2.0.0", ref_is_tag=True, recorded=["1.4.1"]).tag
    '2.0.0'
    >>> choose_version("main", ref_is_tag=False, recorded=["1.4.1", "1.10.2", "x"]).reason
    'main is not a version tag: next patch after 1.10.2'
    >>> choose_version("main", ref_is_tag=False, recorded=[]).tag
    '0.0.1'
    """
    tagged = parse_version(ref) if ref_is_tag else None
    if tagged is not None:
        return VersionChoice(tagged, f"tag {ref}")
    latest = newest(recorded)
    if latest is None:
        return VersionChoice(Version(0, 0, 1), f"{ref} is not a version tag: first version")
    return VersionChoice(
        latest.next_patch(), f"{ref} is not a version tag: next patch after {latest}"
    )


def already_built(app: str, choice: VersionChoice, commit_sha: str, built: dict[str, str]) -> bool:
    """Whether ``choice`` was already built from ``commit_sha`` (nothing to build), given the
    app's ``built`` versions (version -> commit); False when the version is new.

    Raises:
        VersionRefused: the version was built from other code (a moved tag).
    """
    before = built.get(choice.tag)
    if before is None:
        return False
    if before == commit_sha:
        return True
    raise VersionRefused(
        f"{app} {choice.tag} was already built from commit {before[:12]}; {choice.reason} "
        f"now names commit {commit_sha[:12]}, and a version names one build for good",
        hint="tag the new code with a new version (or build a branch or commit: it gets the "
        "next patch version)",
    )
