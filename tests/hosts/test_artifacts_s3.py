"""S3 specifics of the artifact store against a real moto server with authentication on:
multipart, errors that name bucket and key without secrets, the Prefect block, and the store
chosen by the environment."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from quayside.artifacts import (
    ArtifactError,
    ArtifactNotFoundError,
    DirectoryStore,
    S3Store,
    s3_client,
    store_from_env,
)
from quayside.blocks.artifact_store import S3ArtifactStore
from quayside.errors import ConfigError
from testbed.s3 import S3Endpoint, free_port

WRONG_SECRET = "wrong-secret-Zq9vXk2+dontleak"


def bucket_name() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


def client_for(endpoint: S3Endpoint, **overrides: str) -> object:
    args = {
        "endpoint_url": endpoint.endpoint_url,
        "region": endpoint.region,
        "access_key_id": endpoint.access_key_id,
        "secret_access_key": endpoint.secret_access_key,
    }
    args.update(overrides)
    return s3_client(**args)


def small_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "sub/a.txt").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    return root


def assert_names_without_secrets(
    error: ArtifactError, bucket: str, key: str, *secrets: str
) -> None:
    text = " ".join([str(error), repr(error), error.hint or "", repr(error.args)])
    assert bucket in str(error)
    assert key in str(error)
    assert error.hint
    for secret in secrets:
        assert secret not in text


def test_harness_credentials_are_enforced(s3_endpoint: S3Endpoint) -> None:
    endpoint_url, access_key_id, secret = s3_endpoint
    assert endpoint_url.startswith("http://127.0.0.1:")
    assert access_key_id and secret
    good = s3_endpoint.client()
    good.list_buckets()
    bad = s3_endpoint.client(aws_secret_access_key=WRONG_SECRET)
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        bad.list_buckets()


def test_multipart_upload_round_trip(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "blob.bin", "wb") as f:
        for _ in range(12):
            f.write(os.urandom(1 << 20))
    store = S3Store(
        bucket_name(),
        "p",
        client_for(s3_endpoint),
        create_bucket=True,
        compress=False,
        transfer_config=TransferConfig(
            multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=3
        ),
    )
    ref = store.put_dir("big/r1", source)
    head = store.client.head_object(Bucket=store.bucket, Key="p/big/r1")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["Metadata"] == {"sha256": ref.sha256, "size": str(ref.size)}
    assert head["ContentLength"] == ref.size
    store.get_dir("big/r1", tmp_path / "out")
    assert (tmp_path / "out/blob.bin").read_bytes() == (source / "blob.bin").read_bytes()


def test_empty_prefix_and_bucket_created_once(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    bucket = bucket_name()
    store = S3Store(bucket, "", client_for(s3_endpoint), create_bucket=True)
    assert store.location("r1") == f"s3://{bucket}/r1"
    assert not store.exists("r1")  # creates the bucket
    store.put_dir("r1", small_tree(tmp_path / "src"))
    assert store.exists("r1")
    # A second store on the existing bucket, without create_bucket, works.
    other = S3Store(bucket, "", client_for(s3_endpoint))
    other.get_dir("r1", tmp_path / "out")
    assert (tmp_path / "out/sub/a.txt").read_text() == "a\n"


def test_wrong_secret_names_bucket_and_key_not_the_secret(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    bucket = bucket_name()
    S3Store(bucket, "p", client_for(s3_endpoint), create_bucket=True).put_dir(
        "web/r1", small_tree(tmp_path / "src")
    )
    store = S3Store(bucket, "p", client_for(s3_endpoint, secret_access_key=WRONG_SECRET))
    secrets = (WRONG_SECRET, s3_endpoint.secret_access_key)
    for call in (
        lambda: store.put_dir("web/r2", tmp_path / "src"),
        lambda: store.get_dir("web/r1", tmp_path / "out"),
        lambda: store.exists("web/r1"),
    ):
        with pytest.raises(ArtifactError) as info:
            call()
        assert_names_without_secrets(info.value, bucket, "web/r", *secrets)
        assert "credentials" in (info.value.hint or "") or "secret" in (info.value.hint or "")
    assert not (tmp_path / "out").exists()


def test_wrong_secret_on_upload_itself(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    """The bucket check passed (a good client checked it) and the upload is refused: the
    boto3 upload error is unwrapped into the same kind of message."""
    bucket = bucket_name()
    S3Store(bucket, "", client_for(s3_endpoint), create_bucket=True).exists("x")
    store = S3Store(bucket, "", client_for(s3_endpoint, secret_access_key=WRONG_SECRET))
    store._bucket_checked = True  # skip the HEAD bucket check to reach the upload
    with pytest.raises(ArtifactError) as info:
        store.put_dir("web/r9", small_tree(tmp_path / "src"))
    assert "SignatureDoesNotMatch" in str(info.value)
    assert_names_without_secrets(info.value, bucket, "web/r9", WRONG_SECRET)
    assert WRONG_SECRET not in str(info.value.__cause__)


def test_unknown_access_key(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    bucket = bucket_name()
    store = S3Store(
        bucket,
        "p",
        client_for(s3_endpoint, access_key_id="AKIANOSUCHKEY0000000", secret_access_key="s3cr3t"),
        create_bucket=True,
    )
    with pytest.raises(ArtifactError) as info:
        store.put_dir("web/r1", small_tree(tmp_path / "src"))
    assert_names_without_secrets(info.value, bucket, "web/r1", "s3cr3t")


def test_missing_bucket_without_create(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    bucket = bucket_name()
    store = S3Store(bucket, "quayside", client_for(s3_endpoint))
    for call in (
        lambda: store.put_dir("web/r1", small_tree(tmp_path / "src")),
        lambda: store.get_dir("web/r1", tmp_path / "out"),
        lambda: store.exists("web/r1"),
    ):
        with pytest.raises(ArtifactError) as info:
            call()
        assert "does not exist" in str(info.value)
        assert "create_bucket" in (info.value.hint or "")
        assert_names_without_secrets(info.value, bucket, "web/r1", s3_endpoint.secret_access_key)
    assert bucket not in [b["Name"] for b in store.client.list_buckets()["Buckets"]]


def test_unreachable_endpoint(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIAX",
        aws_secret_access_key="hide-me",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    store = S3Store("bucket", "p", client)
    with pytest.raises(ArtifactError) as info:
        store.exists("web/r1")
    assert "endpoint" in (info.value.hint or "")
    assert_names_without_secrets(info.value, "bucket", "web/r1", "hide-me")


def test_object_without_metadata_is_not_an_artifact(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    store = S3Store(bucket_name(), "p", client_for(s3_endpoint), create_bucket=True)
    store.exists("x")
    store.client.put_object(Bucket=store.bucket, Key="p/foreign", Body=b"not a tar")
    with pytest.raises(ArtifactError, match="not stored by Quayside"):
        store.get_dir("foreign", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ArtifactNotFoundError):
        store.info("nothing")


# -- the Prefect block ------------------------------------------------------------------------


def test_block_builds_a_working_store(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    block = S3ArtifactStore(
        bucket=bucket_name(),
        prefix="releases",
        endpoint_url=s3_endpoint.endpoint_url,
        region=s3_endpoint.region,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
        create_bucket=True,
    )
    assert s3_endpoint.secret_access_key not in repr(block)
    assert s3_endpoint.secret_access_key not in str(block.model_dump())
    store = block.get_store()
    assert isinstance(store, S3Store)
    assert s3_endpoint.secret_access_key not in repr(store)
    ref = store.put_dir("web/prod/r1", small_tree(tmp_path / "src"))
    assert ref.location == f"s3://{block.bucket}/releases/web/prod/r1"
    store.get_dir("web/prod/r1", tmp_path / "out")
    assert (tmp_path / "out/sub/a.txt").read_text() == "a\n"


def test_block_metadata_for_the_ui() -> None:
    assert S3ArtifactStore.get_block_type_slug() == "quayside-s3-artifact-store"
    assert S3ArtifactStore._logo_url is None
    description = S3ArtifactStore.get_description() or ""
    assert "release" in description
    assert "get_store()" in (S3ArtifactStore.get_code_example() or "")
    schema = S3ArtifactStore.model_json_schema()
    assert "secret_access_key" in schema["properties"]
    assert schema["properties"]["secret_access_key"]["anyOf"][0]["format"] == "password"


def test_block_with_wrong_secret_keeps_it_out_of_errors(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    block = S3ArtifactStore(
        bucket=bucket_name(),
        endpoint_url=s3_endpoint.endpoint_url,
        region=s3_endpoint.region,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=WRONG_SECRET,
        create_bucket=True,
    )
    with pytest.raises(ArtifactError) as info:
        block.get_store().put_dir("web/r1", small_tree(tmp_path / "src"))
    assert_names_without_secrets(info.value, block.bucket, "web/r1", WRONG_SECRET)


# -- store_from_env ---------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("AWS_", "QUAYSIDE_ARTIFACTS", "QUAYSIDE_S3")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("QUAYSIDE_HOME", str(tmp_path / "home"))
    return monkeypatch


def test_env_default_is_the_data_directory(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = store_from_env()
    assert isinstance(store, DirectoryStore)
    assert store.root == (tmp_path / "home/artifacts").resolve()


def test_env_file_url(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("QUAYSIDE_ARTIFACTS_URL", (tmp_path / "arti facts").as_uri())
    store = store_from_env()
    assert isinstance(store, DirectoryStore)
    assert store.root == (tmp_path / "arti facts").resolve()
    store.put_dir("r", small_tree(tmp_path / "src"))
    assert (tmp_path / "arti facts/r.artifact").is_file()


def test_env_s3_url_uses_the_default_credential_chain(
    clean_env: pytest.MonkeyPatch, s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    bucket = bucket_name()
    clean_env.setenv("QUAYSIDE_ARTIFACTS_URL", f"s3://{bucket}/quayside/artifacts")
    clean_env.setenv("QUAYSIDE_S3_ENDPOINT_URL", s3_endpoint.endpoint_url)
    clean_env.setenv("QUAYSIDE_S3_CREATE_BUCKET", "true")
    clean_env.setenv("AWS_ACCESS_KEY_ID", s3_endpoint.access_key_id)
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_access_key)
    clean_env.setenv("AWS_DEFAULT_REGION", s3_endpoint.region)
    store = store_from_env()
    assert isinstance(store, S3Store)
    ref = store.put_dir("web/r1", small_tree(tmp_path / "src"))
    assert ref.location == f"s3://{bucket}/quayside/artifacts/web/r1"
    store.get_dir("web/r1", tmp_path / "out")
    assert (tmp_path / "out/b.txt").read_text() == "b\n"


@pytest.mark.parametrize(
    "url",
    ["ftp://host/x", "file://host/path", "file:relative", "s3://", "s3:///prefix", "s3://b/p?x=1"],
)
def test_env_bad_urls(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("QUAYSIDE_ARTIFACTS_URL", url)
    with pytest.raises(ConfigError) as info:
        store_from_env()
    assert "QUAYSIDE_ARTIFACTS_URL" in str(info.value)
    assert info.value.hint
