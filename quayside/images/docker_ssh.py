"""A host's Docker engine over SSH (``docker: {url: "ssh://user@host[:port]"}``): every HTTP
connection of the ``docker`` SDK is a channel of one SSH connection, running
``docker system dial-stdio`` on the host - the docker CLI there relays the channel to its
engine, as ``docker -H ssh://…`` does.

The SSH connection is Quayside's own
:class:`~quayside.executors.paramiko_transport.ParamikoTransport`, so the engine is reached
the way every SSH command reaches the host: with the inventory
host's ``key_file``, its host key checked against its ``known_hosts`` (or the system files),
never accepted blindly. docker-py's own SSH adapter would read only ``~/.ssh/config`` and the
user's known_hosts, and its OpenSSH mode takes no key or known_hosts file at all.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import paramiko
from docker.transport.sshconn import SSHConnectionPool, SSHHTTPAdapter

from quayside.executors.paramiko_transport import ParamikoTransport
from quayside.executors.ssh_target import SSHTarget
from quayside.inventory.models import Host

#: what the host runs on each channel: the docker CLI relaying stdin/stdout to its engine
DIAL_STDIO = "docker system dial-stdio"
#: what :func:`why_no_engine` runs to tell why the engine did not answer
VERSION_PROBE = "docker version --format '{{.Server.APIVersion}}'"


def ssh_target(name: str, url: str, login: Host | None) -> SSHTarget:
    """Where ``ssh://user@host:port`` logs in: the URL's user, address and port, else the
    inventory host's user and port; the key, known_hosts and host-key policy of ``login``
    (the inventory host), else the SSH defaults (the agent and ~/.ssh keys, the system
    known_hosts files)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "ssh" or not parsed.hostname:
        raise ValueError(f"not an ssh:// URL: {url}")
    user = parsed.username or (login.user if login is not None else None)
    if user is None:
        raise ValueError(f"{url} names no user (ssh://user@host)")
    port = parsed.port or (login.port if login is not None else 22)
    return SSHTarget(
        name=name,
        address=parsed.hostname,
        port=port,
        user=user,
        key_file=_path(login.key_file) if login is not None else None,
        known_hosts=_path(login.known_hosts) if login is not None else None,
        verify_host_key=login.verify_host_key if login is not None else True,
        connect_timeout=login.connect_timeout if login is not None else 10,
    )


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


class _Link:
    """What docker-py's SSH connection pool asks of a paramiko client: its transport (the
    live one: reconnected when it died)."""

    def __init__(self, transport: ParamikoTransport) -> None:
        self.transport = transport

    def get_transport(self) -> paramiko.Transport:
        return self.transport.transport()


class EngineOverSSH(SSHHTTPAdapter):  # type: ignore[misc]
    """docker-py's SSH adapter on Quayside's SSH connection (each HTTP connection: a channel
    running :data:`DIAL_STDIO`)."""

    def __init__(self, transport: ParamikoTransport, timeout: int, max_pool_size: int) -> None:
        # shell_out=True: the parent builds no paramiko client of its own (none connects)
        super().__init__(
            "ssh://quayside", timeout=timeout, max_pool_size=max_pool_size, shell_out=True
        )
        self.link = transport
        self.ssh_client = None

    def get_connection(self, url: Any, proxies: Any = None) -> SSHConnectionPool:
        live = self.link.transport()  # reconnects when the connection died
        with self.pools.lock:
            pool = self.pools.get(url)
            if pool is None or pool.ssh_transport is not live:
                pool = SSHConnectionPool(
                    ssh_client=_Link(self.link), timeout=self.timeout,
                    maxsize=self.max_pool_size, host="quayside",
                )  # fmt: skip
                self.pools[url] = pool
        return pool

    def close(self) -> None:
        super().close()
        self.link.close()


def open_engine(name: str, url: str, login: Host | None, timeout_s: int) -> Any:
    """A ``docker.DockerClient`` for the engine behind ``url`` (``ssh://…``), its API
    version negotiated.

    Raises:
        quayside.errors.HostError: SSH failed (ConnectError, AuthError, HostKeyError:
            unknown or changed host key), with the host named.
        Exception: the engine did not answer through the host's docker CLI (what the SDK
            raised; :func:`why_no_engine` says why).
    """
    import docker
    from docker.constants import MINIMUM_DOCKER_API_VERSION

    link = ParamikoTransport(ssh_target(name, url, login))
    link.transport()  # connect now: SSH errors are the executor's typed ones
    try:
        client = docker.DockerClient(
            base_url=url, version=MINIMUM_DOCKER_API_VERSION, timeout=timeout_s,
            use_ssh_client=True,  # builds an adapter that connects nothing; replaced below
        )  # fmt: skip
        api = client.api
        unused = api._custom_adapter
        adapter = EngineOverSSH(link, timeout_s, unused.max_pool_size)
        api._custom_adapter = adapter
        api.mount("http+docker://ssh", adapter)
        unused.close()
    except BaseException:
        link.close()  # nothing owns the SSH connection yet
        raise
    try:
        api._version = api._retrieve_server_version()
    except BaseException:
        client.close()
        raise
    return client


def why_no_engine(name: str, url: str, login: Host | None, timeout_s: float = 15) -> str:
    """Why the engine behind ``url`` does not answer, in the host's words: the output of
    :data:`VERSION_PROBE` run there (``docker: not found``, a permission denied on the
    engine's socket, ...), or the SSH error."""
    link = ParamikoTransport(ssh_target(name, url, login))
    try:
        channel = link.open_channel()
        try:
            channel.settimeout(timeout_s)
            channel.exec_command(VERSION_PROBE)
            out = channel.makefile("rb").read().decode(errors="replace").strip()
            err = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
            code = channel.recv_exit_status()
        finally:
            channel.close()
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        link.close()
    if code == 0:
        return f"`docker version` there answers API {out or '?'}"
    lines = (err or out).splitlines()
    return f"`docker version` there exited {code}: {' | '.join(lines[-3:])[:300]}"
