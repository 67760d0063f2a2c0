"""The artifact store the deploy flow uses, chosen by the environment.

Environment variables:
    QUAYSIDE_ARTIFACTS_URL       ``file:///path`` (default: ``$QUAYSIDE_HOME/artifacts``) or
                                 ``s3://bucket/prefix``
    QUAYSIDE_S3_ENDPOINT_URL     an S3-compatible endpoint (MinIO, Ceph, moto); unset for AWS
    QUAYSIDE_S3_CREATE_BUCKET    ``true`` to create the bucket on first use (default false)

S3 credentials and region come from boto3's default chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, the AWS config files, instance metadata). The
``S3ArtifactStore`` Prefect block is the alternative configured in the UI.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from quayside.artifacts.directory import DirectoryStore
from quayside.artifacts.s3 import S3Store, s3_client
from quayside.artifacts.store import ArtifactStore
from quayside.errors import ConfigError, InputError
from quayside.settings import load_settings

URL_VARIABLE = "QUAYSIDE_ARTIFACTS_URL"
ENDPOINT_VARIABLE = "QUAYSIDE_S3_ENDPOINT_URL"
CREATE_BUCKET_VARIABLE = "QUAYSIDE_S3_CREATE_BUCKET"


def store_from_env() -> ArtifactStore:
    """The artifact store named by ``QUAYSIDE_ARTIFACTS_URL`` (see the module docstring).

    Returns:
        A :class:`DirectoryStore` or an :class:`S3Store`.

    Raises:
        ConfigError: The URL is not a ``file://`` URL with an absolute path or an
            ``s3://bucket[/prefix]`` URL.
    """
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        return DirectoryStore(load_settings().artifacts_dir)
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ConfigError(
                f"{URL_VARIABLE}: {url!r} is not a file URL with an absolute path",
                hint="use file:///absolute/path",
            )
        return DirectoryStore(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"{URL_VARIABLE}: {url!r} is not an s3://bucket/prefix URL",
                hint="use s3://bucket or s3://bucket/prefix",
            )
        client = s3_client(endpoint_url=os.environ.get(ENDPOINT_VARIABLE) or None)
        create = os.environ.get(CREATE_BUCKET_VARIABLE, "").lower() in {"1", "true", "yes"}
        try:
            return S3Store(parts.netloc, unquote(parts.path), client, create_bucket=create)
        except InputError as e:
            raise ConfigError(f"{URL_VARIABLE}: {e.message}", hint=e.hint) from e
    raise ConfigError(
        f"{URL_VARIABLE}: unsupported URL {url!r}",
        hint="use file:///absolute/path or s3://bucket/prefix",
    )
