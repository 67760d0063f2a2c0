"""The release artifact store: built release payloads kept as archives (a directory on the
Quayside machine or an S3 bucket) so a release can be restored after its directory was pruned
from the hosts. ``store_from_env()`` is what flows call."""

from quayside.artifacts.directory import DirectoryStore
from quayside.artifacts.env import store_from_env
from quayside.artifacts.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    UnsafeArchiveError,
)
from quayside.artifacts.s3 import S3Store, s3_client
from quayside.artifacts.store import ArtifactRef, ArtifactStore, validate_key

__all__ = [
    "ArtifactError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ArtifactRef",
    "ArtifactStore",
    "DirectoryStore",
    "S3Store",
    "UnsafeArchiveError",
    "s3_client",
    "store_from_env",
    "validate_key",
]
