"""The app's containers on one Docker host, through the host's engine API (the ``docker``
SDK): connect, pull by digest, create and start, wait until a container answers, read a
file's sha256 out of it, list, stop, remove, logs, restart, prune images. The only module of
an image release that talks to an engine; what it creates comes from
:mod:`quayside.images.containers_spec`.
"""

from __future__ import annotations

import hashlib
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from quayside.errors import HostError, QuaysideError
from quayside.images.containers_spec import (
    LABEL_CONFIG,
    LABEL_DIGEST,
    LABEL_VERSION,
    ContainerSpec,
    app_filter,
    slot_of,
)
from quayside.inventory.image_models import DockerEndpoint
from quayside.inventory.models import Host

POLL_S = 0.05


class ContainerError(QuaysideError):
    """A container of a release did not come up, or the engine refused a step."""


class ChecksumMismatch(ContainerError):
    """The artifact inside the new container is not the one the build recorded."""

    hint = "release the digest the build recorded, or build again from the right source"


def connect(
    host: str, endpoint: DockerEndpoint, timeout_s: float = 120, *, login: Host | None = None
) -> Any:
    """A ``docker.DockerClient`` for ``host``'s engine: ``unix://``, plain or TLS ``tcp://``
    (with the endpoint's certificate files), or ``ssh://`` through Quayside's SSH connection
    with ``login``'s (the inventory host's) key_file and known_hosts
    (:mod:`quayside.images.docker_ssh`).

    Raises:
        ContainerError: the engine does not answer, or SSH to it failed (the host, the URL and
            the reason named, in one line).
    """
    import docker
    from docker.constants import MINIMUM_DOCKER_API_VERSION
    from docker.tls import TLSConfig

    if endpoint.url.startswith("ssh://"):
        return _connect_ssh(host, endpoint, int(timeout_s), login)
    tls: Any = False
    if endpoint.tls_ca or endpoint.tls_cert or endpoint.tls_key:
        if bool(endpoint.tls_cert) != bool(endpoint.tls_key):
            raise ContainerError(
                f"{host}: the Docker engine at {endpoint.url}: tls_cert and tls_key go "
                "together (the client certificate and its key)",
                hint=f"set both, or neither, in hosts.{host}.docker in quayside.yaml",
            )
        # the engine's certificate is always verified: against tls_ca, else the system CAs
        client_cert = (endpoint.tls_cert, endpoint.tls_key) if endpoint.tls_cert else None
        try:
            tls = TLSConfig(client_cert=client_cert, ca_cert=endpoint.tls_ca, verify=True)
        except Exception as e:  # a file that is not there
            raise ContainerError(
                f"{host}: the Docker engine at {endpoint.url}: {_reason(e)}",
                hint=f"check the tls_* files of hosts.{host}.docker in quayside.yaml",
            ) from e
    try:
        client = docker.DockerClient(
            base_url=endpoint.url, timeout=int(timeout_s), tls=tls,
            version=MINIMUM_DOCKER_API_VERSION,  # no request yet: see below
        )  # fmt: skip
        # the endpoint is exactly what quayside.yaml names: no proxy from the environment,
        # and tls_ca is what the engine's certificate is checked against (requests would let
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override it, and send tcp:// through HTTP_PROXY)
        client.api.trust_env = False
        client.api._version = client.api._retrieve_server_version()
    except Exception as e:
        raise ContainerError(
            f"{host}: the Docker engine at {endpoint.url} does not answer: {_reason(e)}",
            hint=f"check hosts.{host}.docker.url in quayside.yaml and that the engine runs "
            "and listens there",
        ) from e
    return client


def _connect_ssh(host: str, endpoint: DockerEndpoint, timeout_s: int, login: Host | None) -> Any:
    from quayside.images import docker_ssh

    try:
        return docker_ssh.open_engine(host, endpoint.url, login, timeout_s)
    except HostError as e:
        raise ContainerError(
            f"{host}: the Docker engine at {endpoint.url}: SSH failed: "
            + e.message.removeprefix(f"{e.host}: "),
            hint=e.hint or f"check hosts.{host} (user, key_file, known_hosts) in quayside.yaml",
        ) from e
    except Exception as e:
        why = docker_ssh.why_no_engine(host, endpoint.url, login)
        raise ContainerError(
            f"{host}: the Docker engine at {endpoint.url} does not answer through "
            f"`{docker_ssh.DIAL_STDIO}` ({_reason(e)}); {why}",
            hint="the SSH user needs the docker CLI on its PATH there and access to the "
            "engine's socket (e.g. membership of the docker group)",
        ) from e


def _reason(e: BaseException) -> str:
    """The innermost cause of a docker SDK / requests error, in one short line (requests
    wraps urllib3 wraps the socket error: the last is what a user can act on)."""
    inner: BaseException = e
    while inner.__cause__ is not None or inner.__context__ is not None:
        nxt = inner.__cause__ or inner.__context__
        assert nxt is not None
        inner = nxt
    text = " ".join(str(inner).split())
    return f"{type(inner).__name__}: {text[:200]}" if text else type(inner).__name__


@dataclass(frozen=True)
class Running:
    """One container of the app on a host, as its labels and the engine describe it."""

    name: str
    version: str
    digest: str
    config_version: str
    slot: int | None
    status: str
    health: str | None
    container: Any

    @property
    def running(self) -> bool:
        return self.status == "running"


def app_containers(client: Any, app: str, env: str) -> list[Running]:
    """Every container of ``app``/``env`` on the engine (running or not), oldest first."""
    found = []
    for c in client.containers.list(all=True, filters=app_filter(app, env)):
        labels = c.labels or {}
        state = c.attrs.get("State") or {}
        found.append(
            Running(
                c.name,
                labels.get(LABEL_VERSION, "?"),
                labels.get(LABEL_DIGEST, "?"),
                labels.get(LABEL_CONFIG, "?"),
                slot_of(labels),
                str(state.get("Status") or c.status),
                (state.get("Health") or {}).get("Status"),
                c,
            )
        )
    return sorted(found, key=lambda r: str(r.container.attrs.get("Created", "")))


def pull(client: Any, spec: ContainerSpec, auth: dict[str, str] | None) -> bool:
    """Make ``spec.image`` (``repo@sha256:...``) present; True when it had to be pulled.

    Raises:
        ContainerError: the registry refused or does not have the digest (named).
    """
    try:
        client.images.get(spec.image)
        return False
    except Exception:  # not here: pull it
        pass
    repository = spec.image.split("@", 1)[0]
    try:
        client.api.pull(repository, tag=spec.digest, auth_config=auth)
        client.images.get(spec.image)
    except Exception as e:
        raise ContainerError(
            f"pull of {spec.image} failed: {str(e)[:300]}",
            hint="check that the digest exists in the environment's registry and its credentials",
        ) from e
    return True


def start(client: Any, arguments: dict[str, Any]) -> Any:
    """Create and start a container from :func:`containers_spec.create_arguments`.

    Raises:
        ContainerError: the engine refused (the container is removed again).
    """
    try:
        container = client.containers.create(**arguments)
    except Exception as e:
        raise ContainerError(f"create {arguments['name']}: {str(e)[:300]}") from e
    try:
        container.start()
    except Exception as e:
        remove(container)
        raise ContainerError(f"start {arguments['name']}: {str(e)[:300]}") from e
    return container


def wait_ready(container: Any, url: str, timeout_s: float) -> str:
    """Wait until ``container`` runs (healthy, where its image has a health check) and
    ``url`` answers 2xx; returns what was checked.

    Raises:
        ContainerError: past ``timeout_s`` (what it last was), or it exited (its log tail).
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        container.reload()
        state = container.attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        if state.get("Status") in ("exited", "dead"):
            tail = logs_tail(container, 5)
            raise ContainerError(
                f"{container.name} exited with {state.get('ExitCode')}"
                + (f": {tail}" if tail else "")
            )
        if state.get("Status") == "running" and health in (None, "healthy"):
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310
                    if 200 <= reply.status < 300:
                        return f"running{', healthy' if health else ''}, {url} answered"
                    last = f"{url} answered HTTP {reply.status}"
            except urllib.error.HTTPError as e:
                last = f"{url} answered HTTP {e.code}"
            except OSError as e:
                last = f"{url}: {type(e).__name__}"
        else:
            last = f"state {state.get('Status')}" + (f", health {health}" if health else "")
        if time.monotonic() >= deadline:
            raise ContainerError(f"{container.name} not ready after {timeout_s:g} s: {last}")
        time.sleep(POLL_S)


def file_sha256(container: Any, path: str) -> str:
    """The sha256 of ``path`` inside ``container``, read through the engine's archive API
    (no tool needed in the image).

    Raises:
        ContainerError: no such file (or not a regular file).
    """
    try:
        stream, _stat = container.get_archive(path)
    except Exception as e:
        raise ContainerError(f"{container.name}: cannot read {path}: {str(e)[:200]}") from e
    reader = _ChunkReader(stream)
    with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                digest = hashlib.sha256()
                while piece := handle.read(1 << 20):
                    digest.update(piece)
                return digest.hexdigest()
    raise ContainerError(f"{container.name}: {path} is not a regular file")


class _ChunkReader:
    """A file object over the engine's archive chunks (tarfile's stream mode reads it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            piece = next(self._chunks, None)
            if piece is None:
                break
            self._buffer += piece
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def check_artifact(container: Any, path: str, expected: str) -> str:
    """Refuse the container unless ``path`` inside it has the build's sha256.

    Raises:
        ChecksumMismatch: naming both checksums.
    """
    found = file_sha256(container, path)
    want = expected.removeprefix("sha256:").lower()
    if found != want:
        raise ChecksumMismatch(
            f"{container.name}: {path} has sha256 {found}, the build recorded {want}; refused"
        )
    return f"{path} sha256 {found[:12]} as built"


def stop(container: Any, timeout_s: int = 10) -> None:
    """Stop ``container`` (SIGTERM, SIGKILL after ``timeout_s``); gone already is fine."""
    try:
        container.stop(timeout=timeout_s)
    except Exception as e:
        if "404" not in str(e) and "No such container" not in str(e):
            raise ContainerError(f"stop {container.name}: {str(e)[:200]}") from e


def remove(container: Any) -> None:
    """Remove ``container`` (forced: stopped first); gone already is fine."""
    try:
        container.remove(force=True)
    except Exception as e:
        if "404" not in str(e) and "No such container" not in str(e):
            raise ContainerError(f"remove {container.name}: {str(e)[:200]}") from e


def logs_tail(container: Any, lines: int) -> str:
    try:
        raw = container.logs(tail=lines)
    except Exception:
        return ""
    return " | ".join(raw.decode(errors="replace").strip().splitlines()[-lines:])[:400]


def open_log_stream(container: Any, *, follow: bool, tail: int | str) -> Any:
    """The container's output (stdout and stderr) as chunks of bytes: its last ``tail`` lines
    then, with ``follow``, what it writes until it stops. ``close()`` on the returned stream
    (from another thread) ends it at once (docker's ``CancellableStream``)."""
    return container.logs(stream=True, follow=follow, tail=tail)


def prune_images(
    client: Any, repository: str, keep: int, protected: Collection[str], in_use: Collection[str]
) -> list[str]:
    """Remove the oldest images of ``repository`` beyond ``keep``, never one whose digest is
    ``protected`` (a kept release references it) or ``in_use`` by a container.

    Returns:
        The digests removed.
    """
    images = []
    for image in client.images.list(name=repository):
        digests = [d.split("@", 1)[1] for d in image.attrs.get("RepoDigests") or [] if "@" in d]
        images.append((str(image.attrs.get("Created", "")), image, digests))
    images.sort(key=lambda t: t[0], reverse=True)
    removed = []
    for _created, image, digests in images[keep:]:
        if any(d in protected or d in in_use for d in digests):
            continue
        try:
            client.images.remove(image.id)
        except Exception:  # a container we do not know of uses it: keep it
            continue
        removed += digests
    return removed
