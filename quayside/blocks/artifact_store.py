"""Prefect block: the S3 bucket where release artifacts are kept (the UI-configured
alternative to ``QUAYSIDE_ARTIFACTS_URL``)."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from quayside.artifacts.s3 import S3Store, s3_client


class S3ArtifactStore(Block):
    """An S3 bucket (AWS, MinIO, Ceph or any S3 API) that keeps built release payloads, so a
    release can be restored after its directory was pruned from the hosts. Credentials left
    empty come from the worker's environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the
    AWS config files, instance metadata).

    Args:
        bucket: The bucket name.
        prefix: Key prefix inside the bucket, e.g. ``quayside/artifacts`` ("" for none).
        endpoint_url: URL of an S3-compatible service (MinIO, Ceph); empty for AWS.
        region: The bucket's region; empty for the environment's default.
        access_key_id: Access key id; empty to use the environment's credentials.
        secret_access_key: Secret access key; empty to use the environment's credentials.
        create_bucket: Create the bucket on first use if it does not exist.

    Example:
        Load the block and store a release payload:
        ```python
        from pathlib import Path

        from quayside.blocks.artifact_store import S3ArtifactStore

        store = S3ArtifactStore.load("releases").get_store()
        ref = store.put_dir("web/prod/20240601-v1.2.3", Path("build/web"))
        print(ref.location, ref.sha256)
        ```
    """

    _block_type_name: ClassVar[str | None] = "Quayside S3 Artifact Store"
    _block_type_slug: ClassVar[str | None] = "quayside-s3-artifact-store"
    _description: ClassVar[str | None] = (
        "An S3 bucket (AWS or any S3 API) where Quayside keeps built release payloads, so a "
        "release can be restored after its directory was pruned from the hosts."
    )

    bucket: str = Field(description="The bucket name.")
    prefix: str = Field(
        default="", description="Key prefix inside the bucket, e.g. quayside/artifacts."
    )
    endpoint_url: str | None = Field(
        default=None,
        title="Endpoint URL",
        description="URL of an S3-compatible service (MinIO, Ceph); empty for AWS.",
    )
    region: str | None = Field(
        default=None, description="The bucket's region; empty for the environment's default."
    )
    access_key_id: str | None = Field(
        default=None,
        title="Access key ID",
        description="Empty to use the worker's environment credentials.",
    )
    secret_access_key: SecretStr | None = Field(
        default=None,
        description="Empty to use the worker's environment credentials.",
    )
    create_bucket: bool = Field(
        default=False, description="Create the bucket on first use if it does not exist."
    )

    def get_store(self) -> S3Store:
        """Build the artifact store this block describes.

        Returns:
            An :class:`~quayside.artifacts.s3.S3Store` with its own boto3 client.

        Raises:
            InputError: The bucket name or prefix is invalid.
        """
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        client = s3_client(
            endpoint_url=self.endpoint_url or None,
            region=self.region or None,
            access_key_id=self.access_key_id or None,
            secret_access_key=secret or None,
        )
        return S3Store(self.bucket, self.prefix, client, create_bucket=self.create_bucket)
