"""A real Docker Engine for the image tests and benchmarks: Debian's ``dockerd`` started with
its own data root, exec root and unix socket under a temporary directory, so it shares nothing
with any other engine on the machine and disappears with the test session.

::

    <base>/data/          --data-root (images, layers)
    <base>/exec/          --exec-root (its own containerd)
    <base>/docker.sock    the API (``unix://<base>/docker.sock``)
    <base>/dockerd.log

Networking is the loopback only: no bridge and no iptables rules (the tests need none, and a
second engine's bridge would collide with the first's); containers use ``--network host``.
Every 127.0.0.0/8 registry is insecure (plain HTTP), which is how the test registries serve.

``QUAYSIDE_TEST_DOCKER_HOST`` (e.g. ``unix:///run/docker.sock``) reuses a running engine
instead of starting one. The core (:class:`DockerEngine`, :func:`build_test_image`) needs no
pytest, so ``bench/`` uses it; the session fixture ``docker_engine`` wraps it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

DOCKER_PACKAGE = "docker.io"
BUSYBOX_PACKAGE = "busybox-static"
REUSE_ENV = "QUAYSIDE_TEST_DOCKER_HOST"


class DockerUnavailable(RuntimeError):
    """dockerd is missing or did not start; the message has its log tail."""


class DockerEngine:
    """A ``dockerd`` of our own (or a running one named by ``QUAYSIDE_TEST_DOCKER_HOST``).

    Args:
        binary: path of ``dockerd``.
        base: directory for its state and socket (default: a new temporary directory; the
            socket path must stay under 108 characters, so keep it short).
        start_timeout: seconds to wait for the API to answer.
    """

    def __init__(
        self, binary: str = "dockerd", base: Path | None = None, start_timeout: float = 60
    ) -> None:
        self.binary = binary
        self.base = base
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.host: str | None = os.environ.get(REUSE_ENV) or None
        self._own_base = False

    @property
    def url(self) -> str:
        """The engine's API address (``unix:///…``), for ``docker.DockerClient(base_url=…)``
        and ``DOCKER_HOST``."""
        if self.host is None:
            raise DockerUnavailable("the Docker engine is not started")
        return self.host

    def argv(self) -> list[str]:
        assert self.base is not None
        return [
            self.binary,
            f"--data-root={self.base / 'data'}",
            f"--exec-root={self.base / 'exec'}",
            f"--pidfile={self.base / 'dockerd.pid'}",
            f"--host=unix://{self.base / 'docker.sock'}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--insecure-registry=127.0.0.0/8",
            "--log-level=warn",
        ]

    def start(self) -> str:
        """Start the engine (or adopt the running one) and wait until its API answers.

        Returns:
            The API address.
        """
        if self.process is not None or self.host is not None:
            self.wait_ready()
            return self.url
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="qs-docker-", dir="/tmp"))
            self._own_base = True
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "dockerd.log", "wb") as log:
            self.process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.host = f"unix://{self.base / 'docker.sock'}"
        try:
            self.wait_ready()
        except DockerUnavailable:
            self.stop()
            raise
        return self.url

    def log_tail(self) -> str:
        if self.base is None or not (self.base / "dockerd.log").exists():
            return ""
        return (self.base / "dockerd.log").read_text(errors="replace")[-1500:]

    def wait_ready(self) -> None:
        import docker

        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DockerUnavailable(
                    f"dockerd exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                client = docker.DockerClient(base_url=self.url, timeout=5)
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            except Exception as e:  # the socket is not there yet / not answering
                last = str(e)
                time.sleep(0.1)
        raise DockerUnavailable(f"no answer from {self.url} within {self.start_timeout} s: {last}")

    def client(self) -> Any:
        """A ``docker.DockerClient`` for this engine (close it when done)."""
        import docker

        return docker.DockerClient(base_url=self.url, timeout=300)

    def cli_env(self) -> dict[str, str]:
        """The environment for the ``docker`` CLI to talk to this engine."""
        return {**os.environ, "DOCKER_HOST": self.url}

    def stop(self) -> None:
        """Stop our own engine (SIGTERM, SIGKILL after 20 s) and remove its directory."""
        process, self.process = self.process, None
        if process is None:
            return
        self.host = None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._own_base and self.base is not None:
            _unmount_under(self.base)
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> DockerEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _unmount_under(base: Path) -> None:
    """Unmount what dockerd left mounted under ``base`` (overlay layers, its shm), deepest
    first, so the directory can be removed."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(str(base))), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def busybox_path() -> str | None:
    """The static busybox binary (Debian ``busybox-static``), which runs in a ``FROM scratch``
    image."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.exists() and b"/ld-linux" not in path.read_bytes()[:4096]:  # no interpreter
            return candidate
    return None


def dockerfile(layer_count: int) -> str:
    """A Dockerfile of ``FROM scratch``, busybox as ``/bin/sh``, and one COPY (one layer) per
    data file."""
    lines = ["FROM scratch", "COPY busybox /bin/busybox", "COPY busybox /bin/sh"]
    lines += [f"COPY layer{i} /data/layer{i}" for i in range(layer_count)]
    lines.append('CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/data"]')
    return "\n".join(lines) + "\n"


def build_test_image(
    engine_client: Any,
    tag: str,
    layer_sizes: Sequence[int],
    context_dir: Path,
    seed: bytes = b"",
) -> str:
    """Build a small image locally: ``FROM scratch`` + busybox-static + one layer of random
    bytes per entry of ``layer_sizes`` (so a pushed layer compresses to about its size).

    Args:
        engine_client: a ``docker.DockerClient``.
        tag: the local name:tag of the image.
        layer_sizes: bytes of each data layer.
        context_dir: an empty directory for the build context.
        seed: makes the data differ between images built with the same sizes.

    Returns:
        The image id.
    """
    busybox = busybox_path()
    if busybox is None:
        raise DockerUnavailable(f"no static busybox: install {BUSYBOX_PACKAGE}")
    context_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox, context_dir / "busybox")
    for i, size in enumerate(layer_sizes):
        (context_dir / f"layer{i}").write_bytes(seed + os.urandom(size))
    (context_dir / "Dockerfile").write_text(dockerfile(len(layer_sizes)))
    image, _logs = engine_client.images.build(path=str(context_dir), tag=tag, rm=True)
    return str(image.id)


def push_image(engine_client: Any, repository: str, tag: str, username: str, password: str) -> str:
    """Push ``repository:tag`` with the engine and return the manifest digest it reported.

    Raises:
        RuntimeError: the push reported an error (its text).
    """
    digest = ""
    for line in engine_client.images.push(
        repository,
        tag=tag,
        auth_config={"username": username, "password": password},
        stream=True,
        decode=True,
    ):
        if "error" in line:
            raise RuntimeError(f"docker push {repository}:{tag}: {line['error']}")
        aux = line.get("aux") or {}
        digest = aux.get("Digest", digest)
    if not digest:
        raise RuntimeError(f"docker push {repository}:{tag} reported no digest")
    return digest


# -- pytest fixtures (only when pytest is importable: bench/ may run without it) -------------

try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def docker_engine() -> Iterator[DockerEngine]:
        """A Docker Engine for the session (per xdist worker) on its own unix socket, or the
        one ``QUAYSIDE_TEST_DOCKER_HOST`` names; FAILS in CI when dockerd is missing."""
        from testbed.require import missing, need_binary

        engine = DockerEngine()
        if engine.host is None:
            engine.binary = need_binary("dockerd", DOCKER_PACKAGE)
            if os.geteuid() != 0:
                missing("a Docker engine", f"run as root, or set {REUSE_ENV} to a running one")
        if busybox_path() is None:
            missing("busybox (static)", f"install the Debian package {BUSYBOX_PACKAGE}")
        try:
            engine.start()
        except DockerUnavailable as e:
            missing("a Docker engine", f"dockerd did not start: {e}")
        try:
            yield engine
        finally:
            engine.stop()
