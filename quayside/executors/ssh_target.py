"""The SSH host both transports connect to: address, login, key and host-key policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Known-hosts files OpenSSH reads when none is configured (paramiko loads the same).
SYSTEM_KNOWN_HOSTS = (Path("/etc/ssh/ssh_known_hosts"), Path("~/.ssh/known_hosts"))


@dataclass(frozen=True)
class SSHTarget:
    """One SSH host and how to log in to it (see :class:`quayside.executors.ssh.SSHExecutor`
    for what each field means)."""

    name: str
    address: str
    port: int
    user: str
    key_file: Path | None
    known_hosts: Path | None
    verify_host_key: bool
    connect_timeout: float

    @property
    def endpoint(self) -> str:
        """``address:port``, as error messages show it."""
        return f"{self.address}:{self.port}"

    @property
    def known_hosts_source(self) -> str:
        """What the host key is checked against, as error messages name it."""
        return str(self.known_hosts) if self.known_hosts else "the system known_hosts files"

    def destination(self) -> str:
        """``user@address`` for the OpenSSH client and rsync."""
        return f"{self.user}@{self.address}"
