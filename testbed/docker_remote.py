"""The test Docker engine reached as a remote host's engine: over ``tcp://`` on a loopback
address, and over ``ssh://`` through an sshd host whose login user reaches the engine with
the docker CLI (``docker system dial-stdio``), as a Docker host in production does.

::

    tcp://127.0.0.85:<port>   socat TCP-LISTEN (loopback only) -> the engine's unix socket
    tcp://127.0.0.85:<port>   socat OPENSSL-LISTEN (a test CA's server certificate, client
                              certificates required) -> the engine's unix socket
    ssh://quayside-deploy@127.0.0.86:<port>
        sshd (testbed.sshd, its own host key in the fleet's known_hosts, the fleet's client key)
        SetEnv DOCKER_HOST=unix://<dir>/docker.sock: the login user's engine socket, a socat
        relay to the engine owned by that user (mode 0600) - the user gets the engine the way
        a member of the docker group gets /var/run/docker.sock, and the engine's own socket
        keeps its permissions

The core (:class:`EngineRelay`, :func:`start_tls_relay`, :func:`start_ssh_docker_host`) needs
no pytest; the fixtures ``docker_tcp``, ``docker_tls`` and ``docker_ssh_host`` wrap them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a sibling plugin imported here loses assert rewriting
    from testbed.docker_engine import DockerEngine
    from testbed.sshd import SshdFleet, SshdHost

SOCAT_PACKAGE = "socat"
TCP_ADDRESS = "127.0.0.85"
"""Where the engine's ``tcp://`` relay listens."""
SSH_ADDRESS = "127.0.0.86"
"""The sshd host whose login user reaches the engine."""
LOGIN = "quayside-deploy"
"""Its login user (:data:`testbed.sshd.DEPLOY_USER`)."""


class RelayError(RuntimeError):
    """socat did not start or does not accept connections."""


def tcp_relay_argv(socat: str, address: str, port: int, engine_socket: Path) -> list[str]:
    """socat listening on ``address:port`` (only there), one child per connection, each
    relayed to the engine's unix socket."""
    return [
        socat,
        f"TCP-LISTEN:{port},bind={address},fork,reuseaddr",
        f"UNIX-CONNECT:{engine_socket}",
    ]


def unix_relay_argv(socat: str, path: Path, owner: str, engine_socket: Path) -> list[str]:
    """socat listening on the unix socket ``path``, owned by ``owner`` with mode 0600, relayed
    to the engine's socket."""
    return [
        socat,
        f"UNIX-LISTEN:{path},fork,unlink-early,user={owner},mode=600",
        f"UNIX-CONNECT:{engine_socket}",
    ]


@dataclass
class EngineRelay:
    """One socat relay to the engine (started by :meth:`start`, killed by :meth:`stop`)."""

    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, ready: tuple[str, int] | Path, timeout: float = 10) -> None:
        """Start socat and wait until ``ready`` (``(address, port)`` or a socket path)
        accepts a connection."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                text = self.log.read_text(errors="replace")[-800:]
                raise RelayError(f"socat exited with {self.process.returncode}: {text}")
            try:
                if isinstance(ready, Path):
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(str(ready))
                else:
                    socket.create_connection(ready, timeout=1).close()
                return
            except OSError as e:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RelayError(f"socat ({' '.join(self.argv)}) not ready: {e}") from e
                time.sleep(0.05)

    def stop(self) -> None:
        """Kill socat and its per-connection children (its own process group)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, 15)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def engine_socket(engine_url: str) -> Path:
    """The unix socket path of ``unix:///…``."""
    if not engine_url.startswith("unix://"):
        raise RelayError(f"the test engine is not on a unix socket: {engine_url}")
    return Path(engine_url.removeprefix("unix://"))


def start_tcp_relay(
    socat: str, engine_url: str, work: Path, address: str = TCP_ADDRESS
) -> tuple[EngineRelay, str]:
    """The engine on ``tcp://address:<free port>``; returns the relay and that URL."""
    from testbed.sshd import free_port

    port = free_port(address)
    relay = EngineRelay(tcp_relay_argv(socat, address, port, engine_socket(engine_url)),
                        work / f"socat-tcp-{port}.log")  # fmt: skip
    relay.start((address, port))
    return relay, f"tcp://{address}:{port}"


@dataclass(frozen=True)
class TlsFiles:
    """A CA, the engine's server certificate (for an IP address) and a client certificate
    signed by it, as PEM files (the inventory's ``tls_ca``, ``tls_cert``, ``tls_key``)."""

    ca: Path
    server: Path
    """key and certificate in one file, as socat's ``cert=`` takes them"""
    client_cert: Path
    client_key: Path


def make_tls_files(openssl: str, directory: Path, address: str) -> TlsFiles:
    """A throwaway CA and its server (``IP:address``) and client certificates."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*argv: str) -> None:
        subprocess.run([openssl, *argv], cwd=directory, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=quayside test CA",
    )
    for name, extension in (
        ("server", f"subjectAltName=IP:{address}"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        run(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        (directory / f"{name}.ext").write_text(extension + "\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    server = directory / "server-bundle.pem"
    server.write_text((directory / "server.key").read_text()
                      + (directory / "server.pem").read_text())  # fmt: skip
    return TlsFiles(directory / "ca.pem", server, directory / "client.pem",
                    directory / "client.key")  # fmt: skip


def tls_relay_argv(
    socat: str, address: str, port: int, files: TlsFiles, engine_socket: Path
) -> list[str]:
    """socat serving TLS on ``address:port`` (the server certificate; client certificates
    signed by the CA required), relayed to the engine's unix socket - as ``dockerd
    --tlsverify`` listens."""
    return [
        socat,
        f"OPENSSL-LISTEN:{port},bind={address},fork,reuseaddr,cert={files.server},"
        f"cafile={files.ca},verify=1",
        f"UNIX-CONNECT:{engine_socket}",
    ]


def start_tls_relay(
    socat: str, engine_url: str, files: TlsFiles, work: Path, address: str = TCP_ADDRESS
) -> tuple[EngineRelay, str]:
    """The engine on ``tcp://address:<free port>`` behind TLS with client certificates."""
    from testbed.sshd import free_port

    port = free_port(address)
    argv = tls_relay_argv(socat, address, port, files, engine_socket(engine_url))
    relay = EngineRelay(argv, work / f"socat-tls-{port}.log")
    relay.start((address, port))
    return relay, f"tcp://{address}:{port}"


@dataclass
class SshDockerHost:
    """An sshd host whose login user runs the docker CLI against the test engine."""

    fleet: SshdFleet
    relay: EngineRelay
    socket: Path

    @property
    def host(self) -> SshdHost:
        return self.fleet.hosts[0]

    @property
    def url(self) -> str:
        """``ssh://user@address:port``, the inventory's ``docker.url``."""
        h = self.host
        return f"ssh://{h.user}@{h.address}:{h.port}"

    def inventory_host(self, **more: object) -> dict[str, object]:
        """``hosts.<name>`` for quayside.yaml: the SSH login (key, known_hosts) and
        ``docker: {url: ssh://…}``."""
        h = self.host
        entry: dict[str, object] = {
            "address": h.address, "port": h.port, "user": h.user,
            "key_file": str(h.key_file), "known_hosts": str(h.known_hosts),
            "docker": {"url": self.url},
        }  # fmt: skip
        entry.update(more)
        return entry

    def close(self) -> None:
        self.fleet.close()
        self.relay.stop()


def start_ssh_docker_host(
    socat: str, engine_url: str, base: Path, address: str = SSH_ADDRESS, login: str = LOGIN
) -> SshDockerHost:
    """An sshd host on ``address`` logged in as ``login`` (created if missing), whose
    sessions have ``DOCKER_HOST`` set to a socket of ``login``'s own relaying to the engine.

    ``base`` must be reachable by ``login`` (o+x on every directory up to it).
    """
    from testbed.sshd import SshdFleet

    base.mkdir(parents=True, exist_ok=True)
    fleet = SshdFleet(base / "sshd", 1, address, login=login)
    try:
        user_dir = base / "engine"
        user_dir.mkdir(mode=0o755, exist_ok=True)
        path = user_dir / "docker.sock"
        relay = EngineRelay(unix_relay_argv(socat, path, login, engine_socket(engine_url)),
                            base / "socat-unix.log")  # fmt: skip
        relay.start(path)
        host = fleet.hosts[0]
        host.stop()  # sshd reads only its first SetEnv line: add DOCKER_HOST to that one
        config = host.config.read_text()
        line = next((x for x in config.splitlines() if x.startswith("SetEnv ")), None)
        docker_host = f"DOCKER_HOST=unix://{path}"
        if line is None:
            config += f"SetEnv {docker_host}\n"
        else:
            config = config.replace(line, f"{line} {docker_host}")
        host.config.write_text(config)
        host.start()
    except BaseException:
        fleet.close()
        raise
    return SshDockerHost(fleet, relay, path)


# -- pytest fixtures (only when pytest is importable: bench/ may run without it) -------------

try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def docker_tcp(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[str]:
        """The session's engine on ``tcp://127.0.0.85:<port>`` (plain HTTP, loopback only)."""
        from testbed.require import need_binary

        socat = need_binary("socat", SOCAT_PACKAGE)
        relay, url = start_tcp_relay(socat, docker_engine.url, tmp_path)
        try:
            yield url
        finally:
            relay.stop()

    @pytest.fixture
    def docker_tls(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[tuple[str, TlsFiles]]:
        """The session's engine on ``tcp://127.0.0.85:<port>`` behind TLS (server certificate
        of a test CA, client certificates required), and the certificate files."""
        from testbed.require import need_binary

        socat = need_binary("socat", SOCAT_PACKAGE)
        files = make_tls_files(need_binary("openssl", "openssl"), tmp_path / "tls", TCP_ADDRESS)
        relay, url = start_tls_relay(socat, docker_engine.url, files, tmp_path)
        try:
            yield url, files
        finally:
            relay.stop()

    @pytest.fixture(scope="session")
    def docker_ssh_host(docker_engine: DockerEngine) -> Iterator[SshDockerHost]:
        """An sshd host (127.0.0.86, login quayside-deploy) whose user reaches the session's
        engine with the docker CLI: the engine as ``ssh://`` for the whole session."""
        from testbed.require import missing, need_binary

        socat = need_binary("socat", SOCAT_PACKAGE)
        need_binary("sshd", "openssh-server")
        if shutil.which("docker") is None:
            missing("the docker CLI", "install the Debian package docker.io")
        if os.geteuid() != 0:
            missing("an sshd host for another user", "run as root (it creates the login user)")
        base = Path(tempfile.mkdtemp(prefix="qs-dockerssh-", dir="/tmp"))
        base.chmod(0o755)  # the login user reads its authorized_keys and socket under it
        ssh_host = start_ssh_docker_host(socat, docker_engine.url, base)
        try:
            yield ssh_host
        finally:
            ssh_host.close()
            shutil.rmtree(base, ignore_errors=True)
