"""Errors of the release artifact store; each names the artifact (``s3://bucket/key`` or the
file) and, where there is one, the next step."""

from __future__ import annotations

from quayside.errors import NotFoundError, QuaysideError


class ArtifactError(QuaysideError):
    """The artifact store failed to keep or give back a release payload.

    Attributes:
        location: Where the artifact is (or would be), e.g. ``s3://bucket/prefix/key``.
        key: The artifact key, if the failure concerns one artifact.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.location = location
        self.key = key
        text = f"{location}: {message}" if location else message
        super().__init__(text, hint=hint)


class ArtifactNotFoundError(ArtifactError, NotFoundError):
    """No artifact is stored under the key."""

    hint = "check the key (the release's artifact key in the ledger) and the store's location"


class ArtifactIntegrityError(ArtifactError):
    """The stored bytes do not match the sha256/size recorded when the artifact was stored."""

    hint = "the stored object was changed or damaged; store the release again from its source"


class UnsafeArchiveError(ArtifactError):
    """The archive holds a member that would land outside the destination (``..``, an absolute
    path, a path through a symlink, a device file, ...); nothing was extracted."""

    hint = "the archive was not made by Quayside or was tampered with; do not restore it"
