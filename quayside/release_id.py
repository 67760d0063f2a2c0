"""Release ids: ``YYYYmmddTHHMMSSZ-<shortsha>``, UTC, sortable as strings in time order.

A release id names a directory on every host (``<deploy_root>/releases/<id>``), so only this
exact shape is accepted anywhere a release id arrives from outside.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from quayside.errors import InputError

_PATTERN = re.compile(r"(?P<stamp>[0-9]{8}T[0-9]{6}Z)-(?P<sha>[0-9a-f]{7,12})")
_STAMP = "%Y%m%dT%H%M%SZ"
SHORT_SHA_LENGTH = 12


def new_release_id(commit_sha: str, now: datetime | None = None) -> str:
    """A new release id for ``commit_sha`` at ``now`` (default: the current UTC time).

    >>> new_release_id("0123456789abcdef0123", datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC))
    '20240501T120001Z-0123456789ab'
    """
    sha = commit_sha.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        raise InputError(f"not a commit sha: {commit_sha!r}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{when.strftime(_STAMP)}-{sha[:SHORT_SHA_LENGTH]}"


def is_release_id(value: str) -> bool:
    """True if ``value`` is a well-formed release id (including a real calendar date)."""
    match = _PATTERN.fullmatch(value)
    if match is None:
        return False
    try:
        datetime.strptime(match["stamp"], _STAMP)
    except ValueError:
        return False
    return True


def is_release_of(release_id: str | None, commit_sha: str) -> bool:
    """True if ``release_id`` is a release of ``commit_sha`` (its short sha).

    >>> is_release_of("20240501T120001Z-0123456789ab", "0123456789abcdef0123")
    True
    >>> is_release_of("20240501T120001Z-0123456789ab", "fedcba9876543210")
    False
    >>> is_release_of(None, "0123456789ab")
    False
    """
    match = _PATTERN.fullmatch(release_id or "")
    sha = commit_sha.strip().lower()
    return match is not None and len(sha) >= 7 and sha.startswith(match["sha"])


def validate_release_id(value: str) -> str:
    """Return ``value`` if it is a release id, else raise ``InputError`` naming it."""
    if not isinstance(value, str) or not is_release_id(value):
        raise InputError(
            f"invalid release id {value!r}",
            hint="release ids look like 20240501T120001Z-0123456789ab (UTC time, short commit)",
        )
    return value
