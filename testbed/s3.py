"""A real S3 endpoint on loopback: moto in server mode, as a subprocess, with IAM
authentication switched on — so wrong credentials are refused as AWS would refuse them.

The core (:class:`MotoS3Server`) needs no pytest, so ``bench/`` can use it:

    with MotoS3Server() as s3:
        client = s3.client()  # or s3.endpoint_url / s3.access_key_id / s3.secret_access_key

At start the server runs without authentication just long enough to create one IAM user with
an access key and an allow-all policy; then authentication is enforced. The credentials are
that user's — they never come from the environment or ``~/.aws``. Each server binds a free
port, so pytest-xdist workers each get their own.

The pytest fixture ``s3_endpoint`` (session-scoped) yields an :class:`S3Endpoint`, which
unpacks as ``(endpoint_url, access_key_id, secret_access_key)``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

ADDRESS = "127.0.0.1"
REGION = "us-east-1"
#: Credentials for the unauthenticated bootstrap requests only (moto ignores them then).
_BOOTSTRAP_KEY = "AKIAQUAYSIDEBOOTSTRAP"
_BOOTSTRAP_SECRET = "bootstrap-secret-not-checked"


class MotoUnavailable(RuntimeError):
    """moto (with its server extra) is not installed or the server did not start."""


class S3Endpoint(NamedTuple):
    endpoint_url: str
    access_key_id: str
    secret_access_key: str

    @property
    def region(self) -> str:
        """The region the clients use (moto accepts any)."""
        return REGION

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client for this endpoint (path-style), fields overridable."""
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "region_name": self.region,
            "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        }
        kwargs.update(overrides)
        return boto3.session.Session().client("s3", **kwargs)


def moto_available() -> bool:
    """Whether moto and its server dependencies (flask, werkzeug) are importable."""
    return all(importlib.util.find_spec(m) is not None for m in ("moto", "flask", "werkzeug"))


def free_port(address: str = ADDRESS) -> int:
    """A TCP port free on ``address`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


class MotoS3Server:
    """moto's server on a free loopback port, authentication on, one IAM user.

    Args:
        log_dir: Where the server's output goes (default: a temporary file).
        start_timeout: Seconds to wait for the server to answer.
    """

    def __init__(self, log_dir: Path | None = None, start_timeout: float = 30) -> None:
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint: S3Endpoint | None = None
        self.log_path: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return self._endpoint().endpoint_url

    @property
    def access_key_id(self) -> str:
        return self._endpoint().access_key_id

    @property
    def secret_access_key(self) -> str:
        return self._endpoint().secret_access_key

    def _endpoint(self) -> S3Endpoint:
        if self.endpoint is None:
            raise RuntimeError("the moto server is not started")
        return self.endpoint

    def client(self, **overrides: Any) -> Any:
        return self._endpoint().client(**overrides)

    def start(self) -> S3Endpoint:
        """Start the server (trying a few ports), bootstrap credentials, enforce auth."""
        if self.endpoint is not None:
            return self.endpoint
        if not moto_available():
            raise MotoUnavailable("moto[server] is not installed (the dev dependency group)")
        last_error = ""
        for _ in range(5):
            port = free_port()
            url = f"http://{ADDRESS}:{port}"
            self._spawn(port)
            try:
                self._wait_ready(url)
            except MotoUnavailable as e:
                last_error = str(e)
                self.stop()
                continue
            try:
                self.endpoint = self._bootstrap(url)
            except Exception:
                self.stop()
                raise
            return self.endpoint
        raise MotoUnavailable(f"moto server did not start: {last_error}")

    def _spawn(self, port: int) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = self.log_dir / f"moto-{port}.log"
        else:
            fd, name = tempfile.mkstemp(prefix=f"moto-{port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AWS_") and k not in {"INITIAL_NO_AUTH_ACTION_COUNT"}
        }
        env["MOTO_PORT"] = str(port)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", ADDRESS, "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-1000:]

    def _wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MotoUnavailable(f"exited with {self.process.returncode}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise MotoUnavailable(f"no answer within {self.start_timeout} s: {self._log_tail()}")

    def _bootstrap(self, url: str) -> S3Endpoint:
        """Create the test user and its key unauthenticated, then turn authentication on."""
        import boto3

        iam = boto3.session.Session().client(
            "iam",
            endpoint_url=url,
            aws_access_key_id=_BOOTSTRAP_KEY,
            aws_secret_access_key=_BOOTSTRAP_SECRET,
            region_name=REGION,
        )
        user = f"quayside-test-{secrets.token_hex(3)}"
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="allow-all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        request = urllib.request.Request(
            f"{url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            r.read()
        return S3Endpoint(url, key["AccessKeyId"], key["SecretAccessKey"])

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 5 s)."""
        process, self.process = self.process, None
        self.endpoint = None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self.log_dir is None and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)  # a temporary log of our own

    def __enter__(self) -> MotoS3Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- pytest fixtures (only when pytest is importable: bench/ may run without it) -------------

try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
        """A moto S3 server for the session (per xdist worker), authentication on:
        ``(endpoint_url, access_key_id, secret_access_key)`` (plus ``region``, ``client()``).
        """
        # Imported here: importing a sibling plugin at module level defeats its assert rewriting.
        from testbed.require import missing

        if not moto_available():
            missing("moto[server]", "run `uv sync` (moto[server] is in the dev dependency group)")
        server = MotoS3Server(tmp_path_factory.mktemp("moto"))
        try:
            endpoint = server.start()
        except MotoUnavailable as e:
            missing("moto S3 server", str(e))
        try:
            yield endpoint
        finally:
            server.stop()
