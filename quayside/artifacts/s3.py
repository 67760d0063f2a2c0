"""Artifacts in an S3 bucket (AWS or any S3 API: MinIO, Ceph, moto) through boto3.

Key ``web/prod/r1`` is the object ``<prefix>/web/prod/r1``; its sha256 and size are in the
object's user metadata (``x-amz-meta-sha256``, ``x-amz-meta-size``) and checked after every
download. Uploads go from a temporary file through boto3's managed transfer (multipart above
``multipart_threshold``, parts read from the file as they are sent), downloads into a temporary
file, so memory stays bounded by the transfer configuration whatever the payload size.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import Boto3Error, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from quayside.artifacts.errors import ArtifactError, ArtifactNotFoundError
from quayside.artifacts.store import ArtifactRef, ArtifactStore, validate_key
from quayside.errors import InputError

_MIB = 1 << 20
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")

CREDENTIALS_HINT = (
    "check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the AWS "
    "config files, or the S3ArtifactStore block) and that they may use this bucket"
)


def default_transfer_config() -> TransferConfig:
    """Multipart above 16 MiB in 8 MiB parts, 4 parts in flight: bounded memory, parallel
    parts for a 50 MB payload."""
    return TransferConfig(
        multipart_threshold=16 * _MIB,
        multipart_chunksize=8 * _MIB,
        max_concurrency=4,
        use_threads=True,
    )


def s3_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> Any:
    """A boto3 S3 client; what is not given comes from boto3's default chain (environment,
    AWS config and credentials files, instance metadata).

    Args:
        endpoint_url: An S3-compatible endpoint (MinIO, Ceph, moto); path-style addressing is
            used with one. None for AWS.
        region: The region; None for the default chain's.
        access_key_id: Access key id; None for the default chain's.
        secret_access_key: Secret access key; None for the default chain's.
        session_token: Session token for temporary credentials.

    Returns:
        A ``botocore`` S3 client.
    """
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
    )
    config = Config(
        s3={"addressing_style": "path"} if endpoint_url else {},
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )
    return session.client("s3", endpoint_url=endpoint_url or None, config=config)


class S3Store(ArtifactStore):
    """Artifacts as objects in an S3 bucket.

    Args:
        bucket: The bucket.
        prefix: Key prefix inside the bucket ("" for none), e.g. ``quayside/artifacts``.
        client: A boto3 S3 client (see :func:`s3_client`).
        create_bucket: Create the bucket on first use if it does not exist.
        compress: gzip level 1 (default) or plain tar.
        transfer_config: boto3 transfer settings (default :func:`default_transfer_config`).
        temp_dir: Where archives wait on their way in and out (default the system's).

    Raises:
        InputError: The bucket name or prefix is invalid.

    Example:
        >>> store = S3Store("releases", "quayside", s3_client(endpoint_url="http://minio:9000"))
        >>> ref = store.put_dir("web/prod/r42", Path("build/web"))
        >>> ref.location
        's3://releases/quayside/web/prod/r42'
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        *,
        create_bucket: bool = False,
        compress: bool = True,
        transfer_config: TransferConfig | None = None,
        temp_dir: Path | None = None,
    ) -> None:
        if not _BUCKET.fullmatch(bucket or ""):
            raise InputError(
                f"invalid S3 bucket name {bucket!r}",
                hint="use 3-63 lowercase letters, digits, '.' and '-'",
            )
        prefix = (prefix or "").strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.create_bucket = create_bucket
        self.compress = compress
        self.transfer_config = transfer_config or default_transfer_config()
        self.temp_dir = temp_dir
        self._bucket_checked = False
        self._bucket_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- names and errors -------------------------------------------------------------------

    def object_key(self, key: str) -> str:
        """The S3 object key of artifact ``key``."""
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def _secrets(self) -> list[str]:
        """The client's secret key and session token, to keep them out of messages."""
        try:
            creds = self.client._request_signer._credentials
            frozen = creds.get_frozen_credentials() if creds is not None else None
        except Exception:  # noqa: BLE001 - best effort: no credentials means nothing to hide
            return []
        if frozen is None:
            return []
        return [s for s in (frozen.secret_key, frozen.token) if s]

    def _clean(self, text: str) -> str:
        text = _URL_USERINFO.sub(r"\1***@", text)
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _wrap(self, e: Exception, key: str | None, action: str) -> ArtifactError:
        """An :class:`ArtifactError` for a boto3/botocore error ``e`` during ``action``."""
        where = self.location(key) if key is not None else f"s3://{self.bucket}"
        cause: BaseException | None = e
        if isinstance(e, S3UploadFailedError) and isinstance(e.__context__, ClientError):
            cause = e.__context__
        if isinstance(cause, ClientError):
            error = cause.response.get("Error", {})
            code = str(error.get("Code", "")) or "?"
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = self._clean(str(error.get("Message", "") or ""))
            detail = f"{action} failed: {code}" + (f" ({message})" if message else "")
            if code in {"NoSuchBucket"}:
                return ArtifactError(
                    f"{action} failed: bucket {self.bucket!r} does not exist",
                    location=where,
                    key=key,
                    hint="create the bucket, or enable create_bucket for this store",
                )
            if code in {"404", "NoSuchKey", "NotFound"} or status == 404:
                return ArtifactNotFoundError(
                    f"{action} failed: no artifact stored under this key", location=where, key=key
                )
            if (
                code
                in {
                    "403",
                    "AccessDenied",
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                    "InvalidToken",
                    "ExpiredToken",
                }
                or status == 403
            ):
                return ArtifactError(detail, location=where, key=key, hint=CREDENTIALS_HINT)
            if code in {"412", "PreconditionFailed"}:
                return ArtifactError(
                    f"{action} failed: the object changed while it was read",
                    location=where,
                    key=key,
                    hint="it was stored again meanwhile; retry",
                )
            return ArtifactError(
                detail,
                location=where,
                key=key,
                hint="check the bucket, the endpoint and the S3 service's status",
            )
        if isinstance(e, NoCredentialsError | PartialCredentialsError):
            return ArtifactError(
                f"{action} failed: no usable S3 credentials",
                location=where,
                key=key,
                hint=CREDENTIALS_HINT,
            )
        if isinstance(e, EndpointConnectionError):
            return ArtifactError(
                f"{action} failed: cannot reach the S3 endpoint: {self._clean(str(e))}",
                location=where,
                key=key,
                hint="check the endpoint URL (QUAYSIDE_S3_ENDPOINT_URL or the block's "
                "endpoint_url) and that the service is up",
            )
        return ArtifactError(
            f"{action} failed: {type(e).__name__}: {self._clean(str(e))}",
            location=where,
            key=key,
            hint="check the bucket, the endpoint and the credentials",
        )

    # -- bucket ---------------------------------------------------------------------------

    def _ensure_bucket(self, key: str | None) -> None:
        """Check once per store that the bucket is there (creating it if allowed)."""
        if self._bucket_checked:
            return
        with self._bucket_lock:
            if self._bucket_checked:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                code = str(e.response.get("Error", {}).get("Code", ""))
                if code not in {"404", "NoSuchBucket", "NotFound"}:
                    raise self._wrap(e, key, "checking the bucket") from e
                if not self.create_bucket:
                    raise ArtifactError(
                        f"bucket {self.bucket!r} does not exist",
                        location=self.location(key) if key is not None else None,
                        key=key,
                        hint="create the bucket, or enable create_bucket for this store",
                    ) from e
                self._create_bucket(key)
            except (BotoCoreError, Boto3Error) as e:
                raise self._wrap(e, key, "checking the bucket") from e
            self._bucket_checked = True

    def _create_bucket(self, key: str | None) -> None:
        region = getattr(self.client.meta, "region_name", None)
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code not in {"BucketAlreadyOwnedByYou"}:
                raise self._wrap(e, key, "creating the bucket") from e
        except (BotoCoreError, Boto3Error) as e:
            raise self._wrap(e, key, "creating the bucket") from e

    # -- operations -------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None if there is no object."""
        self._ensure_bucket(key)
        try:
            head: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self.object_key(key)
            )
        except ClientError as e:
            wrapped = self._wrap(e, key, "reading the artifact")
            if isinstance(wrapped, ArtifactNotFoundError):
                return None
            raise wrapped from e
        except (BotoCoreError, Boto3Error) as e:
            raise self._wrap(e, key, "reading the artifact") from e
        return head

    def _recorded(self, key: str, head: dict[str, Any]) -> tuple[str, int]:
        metadata = head.get("Metadata") or {}
        try:
            return str(metadata["sha256"]), int(metadata["size"])
        except (KeyError, ValueError):
            raise ArtifactError(
                "the object has no sha256/size metadata; it was not stored by Quayside",
                location=self.location(key),
                key=key,
                hint="store the release again through Quayside",
            ) from None

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def info(self, key: str) -> ArtifactRef:
        head = self._head(key)
        if head is None:
            raise ArtifactNotFoundError(
                "no artifact stored under this key", location=self.location(key), key=key
            )
        sha256, size = self._recorded(key, head)
        return ArtifactRef(key=key, location=self.location(key), sha256=sha256, size=size)

    def delete(self, key: str) -> None:
        self._ensure_bucket(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except (ClientError, BotoCoreError, Boto3Error) as e:
            wrapped = self._wrap(e, key, "deleting the artifact")
            if not isinstance(wrapped, ArtifactNotFoundError):
                raise wrapped from e

    def _prepare(self, key: str) -> None:
        self._ensure_bucket(key)

    def _temp_path(self, key: str) -> Path:
        validate_key(key)
        with tempfile.NamedTemporaryFile(
            dir=self.temp_dir, prefix="quayside-artifact-", suffix=".tar", delete=False
        ) as f:
            return Path(f.name)

    def _commit(self, key: str, archive: Path, sha256: str, size: int) -> None:
        self._ensure_bucket(key)
        extra = {
            "Metadata": {"sha256": sha256, "size": str(size)},
            "ContentType": "application/gzip" if self.compress else "application/x-tar",
        }
        try:
            # upload_file (not upload_fileobj): parts are read from the file as they are sent
            # instead of being buffered in memory.
            self.client.upload_file(
                str(archive),
                self.bucket,
                self.object_key(key),
                ExtraArgs=extra,
                Config=self.transfer_config,
            )
        except (ClientError, BotoCoreError, Boto3Error) as e:
            raise self._wrap(e, key, "storing the artifact") from e

    @contextmanager
    def _open(self, key: str) -> Iterator[tuple[BinaryIO, str, int]]:
        head = self._head(key)
        if head is None:
            raise ArtifactNotFoundError(
                "no artifact stored under this key", location=self.location(key), key=key
            )
        sha256, size = self._recorded(key, head)
        with tempfile.TemporaryFile(dir=self.temp_dir, prefix="quayside-artifact-") as f:
            try:
                self.client.download_fileobj(
                    self.bucket,
                    self.object_key(key),
                    f,
                    Config=self.transfer_config,
                )
            except (ClientError, BotoCoreError, Boto3Error) as e:
                raise self._wrap(e, key, "fetching the artifact") from e
            f.seek(0)
            yield f, sha256, size  # type: ignore[misc]
