"""Two real registries for the image tests and benchmarks: Debian's ``docker-registry``
(the registry:2 binary, 2.8) on two loopback addresses, standing for the test and the
production registry. Each has its own storage directory, htpasswd file (bcrypt, made with
``htpasswd -Bbn``) and user, and serves plain HTTP.

::

    <base>/config.yml   http.addr <address>:<port>, auth.htpasswd, storage.filesystem
    <base>/htpasswd     one bcrypt user
    <base>/storage/     blobs and repositories
    <base>/registry.log the access log (one line per request: what the tests count)

A server can be stopped and started again on the same address, port and storage (the outage
tests) or wiped (the benchmarks' cold runs). The core needs no pytest (``bench/`` uses it); the
session fixture ``registries`` yields a :class:`RegistryPair`.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGISTRY_PACKAGE = "docker-registry"
HTPASSWD_PACKAGE = "apache2-utils"
SOURCE_ADDRESS = "127.0.0.61"
TARGET_ADDRESS = "127.0.0.62"

#: ``"POST /v2/app/blobs/uploads/ HTTP/1.1" 202`` in an access log line.
_REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


class RegistryUnavailable(RuntimeError):
    """docker-registry or htpasswd is missing, or the server did not start."""


def registry_config(address: str, port: int, base: Path) -> str:
    """The registry's config.yml: htpasswd auth, filesystem storage, access log on, uploads
    never purged behind a test's back."""
    return f"""version: 0.1
log:
  level: error
  formatter: text
storage:
  filesystem:
    rootdirectory: {base / "storage"}
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {address}:{port}
  secret: {secrets.token_hex(16)}
auth:
  htpasswd:
    realm: quayside-test
    path: {base / "htpasswd"}
"""


def htpasswd_line(binary: str, username: str, password: str) -> str:
    """One bcrypt htpasswd entry (``htpasswd -Bbn``); the registry accepts only bcrypt."""
    out = subprocess.run(
        [binary, "-Bbn", username, password], check=True, capture_output=True, text=True
    )
    return out.stdout.strip() + "\n"


def free_port(address: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AccessLogLine:
    method: str
    path: str
    status: int


@dataclass
class RegistryServer:
    """One ``docker-registry`` at ``address``:``port`` with its files under ``base``."""

    name: str
    address: str
    base: Path
    binary: str
    username: str
    password: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def host(self) -> str:
        """``address:port``, the registry part of an image name."""
        return f"{self.address}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base / "registry.log"

    @property
    def storage(self) -> Path:
        return self.base / "storage"

    def write(self, htpasswd_binary: str) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.address)
        (self.base / "config.yml").write_text(registry_config(self.address, self.port, self.base))
        (self.base / "htpasswd").write_text(
            htpasswd_line(htpasswd_binary, self.username, self.password)
        )

    def start(self, timeout: float = 15) -> None:
        """Start the server (same address, port and storage as before) and wait for ``/v2/``."""
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.process = subprocess.Popen(
                [self.binary, "serve", str(self.base / "config.yml")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RegistryUnavailable(
                    f"registry {self.name} exited with {self.process.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-1000:]}"
                )
            if self.answers():
                return
            time.sleep(0.02)
        raise RegistryUnavailable(f"registry {self.name} at {self.url} did not answer")

    def answers(self) -> bool:
        """Whether ``/v2/`` answers at all (401 without credentials counts)."""
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 5 s); storage stays."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def wipe(self) -> None:
        """Stop, empty the storage, start again: a registry that holds nothing."""
        self.stop()
        shutil.rmtree(self.storage, ignore_errors=True)
        self.start()

    def log_mark(self) -> int:
        """A position in the access log; :meth:`requests_since` reads after it."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def requests_since(self, mark: int) -> list[AccessLogLine]:
        """The requests the registry logged after ``mark`` (method, path, status)."""
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            text = log.read().decode(errors="replace")
        return [
            AccessLogLine(m["method"], m["path"], int(m["status"]))
            for m in _REQUEST_LINE.finditer(text)
        ]

    def settings(self, **overrides: Any) -> Any:
        """``quayside.registry.RegistrySettings`` for this server."""
        from quayside.registry import RegistrySettings

        values: dict[str, Any] = {
            "url": self.url,
            "username": self.username,
            "password": self.password,
        }
        values.update(overrides)
        return RegistrySettings(**values)


def blob_uploads(lines: Sequence[AccessLogLine]) -> list[AccessLogLine]:
    """The upload starts among ``lines`` (``POST …/blobs/uploads/`` without ``mount=``)."""
    return [
        line
        for line in lines
        if line.method == "POST" and "/blobs/uploads/" in line.path and "mount=" not in line.path
    ]


def blob_mounts(lines: Sequence[AccessLogLine]) -> list[AccessLogLine]:
    """The cross-repository mounts among ``lines`` that the registry granted (201)."""
    return [
        line
        for line in lines
        if line.method == "POST" and "mount=" in line.path and line.status == 201
    ]


@dataclass
class RegistryPair:
    """The test registry (``source``) and the production registry (``target``): different
    addresses, storage and credentials."""

    source: RegistryServer
    target: RegistryServer

    def stop(self) -> None:
        self.source.stop()
        self.target.stop()

    def __iter__(self) -> Iterator[RegistryServer]:
        return iter((self.source, self.target))


def start_pair(
    base: Path, registry_binary: str = "docker-registry", htpasswd_binary: str = "htpasswd"
) -> RegistryPair:
    """Start two registries under ``base`` (``source`` on 127.0.0.61, ``target`` on .62)."""
    pair = RegistryPair(
        RegistryServer(
            "source",
            SOURCE_ADDRESS,
            base / "source",
            registry_binary,
            "builder",
            secrets.token_urlsafe(12),
        ),
        RegistryServer(
            "target",
            TARGET_ADDRESS,
            base / "target",
            registry_binary,
            "promoter",
            secrets.token_urlsafe(12),
        ),
    )
    try:
        for server in pair:
            server.write(htpasswd_binary)
            server.start()
    except Exception:
        pair.stop()
        raise
    return pair


def random_layer(size: int) -> tuple[bytes, str]:
    """A gzipped tar holding one file of ``size`` random bytes, and its diff id (digest of the
    uncompressed tar)."""
    import gzip
    import hashlib
    import io
    import os
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(f"data/{secrets.token_hex(8)}")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    data = raw.getvalue()
    return gzip.compress(data, compresslevel=1, mtime=0), "sha256:" + hashlib.sha256(
        data
    ).hexdigest()


def push_blob(client: Any, repository: str, data: bytes) -> Any:
    """Upload ``data`` (chunked, through the project's client) and return its descriptor."""
    from quayside.registry.manifests import Descriptor, sha256_digest

    digest = sha256_digest(data)
    if not client.blob_exists(repository, digest):
        client.upload_blob(repository, digest, len(data), [data])
    return Descriptor("", digest, len(data))


def push_test_image(
    settings: Any,
    repository: str,
    layer_sizes: Sequence[int],
    *,
    tag: str | None = None,
    platform: tuple[str, str] = ("linux", "amd64"),
    media_type: str | None = None,
) -> Any:
    """Push a single-platform image of random layers through the registry API (no engine):
    the layers, a config naming ``platform``, and an image manifest (Docker v2 by default) by
    digest and ``tag``.

    Returns:
        The manifest's :class:`~quayside.registry.manifests.Descriptor` (digest, size, type).
    """
    import json

    from quayside.registry import RegistryClient
    from quayside.registry.manifests import (
        DOCKER_MANIFEST,
        Descriptor,
        image_manifest,
        parse_manifest,
        sha256_digest,
    )

    kind = media_type or DOCKER_MANIFEST
    with RegistryClient(settings) as client:
        layers, diff_ids = [], []
        for size in layer_sizes:
            blob, diff_id = random_layer(size)
            layers.append(push_blob(client, repository, blob))
            diff_ids.append(diff_id)
        config = json.dumps(
            {
                "architecture": platform[1],
                "os": platform[0],
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        config_descriptor = push_blob(client, repository, config)
        body = image_manifest(config_descriptor, layers, kind)
        manifest = parse_manifest(body, kind, sha256_digest(body))
        client.put_manifest(repository, manifest.digest, manifest)
        if tag is not None:
            client.put_manifest(repository, tag, manifest)
        return Descriptor(kind, manifest.digest, len(body))


def push_test_index(
    settings: Any,
    repository: str,
    children: Sequence[tuple[Any, tuple[str, str]]],
    *,
    tag: str | None = None,
) -> str:
    """Push an OCI image index over ``children`` (``(manifest descriptor, (os, arch))``,
    already in ``repository``) through the registry API. Returns the index digest."""
    from quayside.registry import RegistryClient
    from quayside.registry.manifests import OCI_INDEX, image_index, parse_manifest, sha256_digest

    body = image_index([(d, {"os": p[0], "architecture": p[1]}) for d, p in children])
    index = parse_manifest(body, OCI_INDEX, sha256_digest(body))
    with RegistryClient(settings) as client:
        client.put_manifest(repository, index.digest, index)
        if tag is not None:
            client.put_manifest(repository, tag, index)
    return index.digest


# -- pytest fixtures (only when pytest is importable: bench/ may run without it) -------------

try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def registries() -> Iterator[RegistryPair]:
        """Two htpasswd registries for the session (per xdist worker): ``source`` (test) and
        ``target`` (production); FAILS in CI when docker-registry or htpasswd is missing."""
        from testbed.require import need_binary

        registry = need_binary("docker-registry", REGISTRY_PACKAGE)
        htpasswd = need_binary("htpasswd", HTPASSWD_PACKAGE)
        base = Path(tempfile.mkdtemp(prefix="qs-registries-"))
        pair = start_pair(base, registry, htpasswd)
        try:
            yield pair
        finally:
            pair.stop()
            shutil.rmtree(base, ignore_errors=True)
