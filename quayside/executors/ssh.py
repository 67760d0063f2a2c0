"""The SSH executor: runs argv commands on a remote host and copies files there, picking the
transport each needs behind the :class:`~quayside.executors.base.Executor` interface.

* :mod:`quayside.executors.quoting` turns argv into the one remote command string;
* :mod:`quayside.executors.paramiko_transport` carries commands and SFTP uploads on one reused
  paramiko connection (the default);
* :mod:`quayside.executors.openssh_transport` runs the ``ssh`` client instead, for bulk
  standard input (a local file) and for hosts with persisted connections (``persist_s``).
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from types import TracebackType

import paramiko

from quayside.executors.base import CommandResult, OutputCallback, RemoteShell
from quayside.executors.control import control_name
from quayside.executors.openssh_transport import (
    BULK_CIPHERS,
    BULK_KEX,
    OPENSSH_FAILED,
    OpenSSHTransport,
    openssh_failure,
)
from quayside.executors.paramiko_transport import ParamikoTransport, first_line
from quayside.executors.quoting import remote_command, ssh_config_path
from quayside.executors.ssh_target import SYSTEM_KNOWN_HOSTS, SSHTarget

__all__ = [
    "BULK_CIPHERS",
    "BULK_KEX",
    "OPENSSH_FAILED",
    "SYSTEM_KNOWN_HOSTS",
    "SSHExecutor",
    "first_line",
    "openssh_failure",
    "remote_command",
    "ssh_config_path",
]


class SSHExecutor:
    """Runs commands on one host over a single, lazily opened, reused SSH connection.

    Key authentication only; the host key is checked against ``known_hosts`` unless the host
    explicitly opts out. Safe to share between threads: commands run on concurrent channels of
    the one connection.

    Args:
        name: Host name used in results and error messages (e.g. ``web-1``).
        address: IP address or DNS name to connect to.
        port: SSH port.
        user: Remote user; defaults to the local user, as OpenSSH does.
        key_file: Private key to authenticate with. ``None`` allows the SSH agent and the
            default keys in ``~/.ssh``.
        known_hosts: known_hosts file to verify the host key against. ``None`` uses the
            system and user files (``/etc/ssh/ssh_known_hosts``, ``~/.ssh/known_hosts``).
        verify_host_key: ``False`` accepts any host key (logged as a warning).
        connect_timeout: Seconds for TCP connect, SSH handshake and authentication each.
        control_dir: Where OpenSSH control sockets live (:mod:`quayside.executors.control`).
        persist_s: With ``control_dir``: commands run through the OpenSSH client on a master
            connection kept open this long after its last command, for later commands and
            later runs (``ControlPersist``). 0: one paramiko connection per executor.

    Example:
        >>> web = SSHExecutor("web-1", "10.0.0.5", user="deploy", key_file=Path("id_ed25519"),
        ...                   known_hosts=Path("known_hosts"))
        >>> web.run(["ls", "-l", "/srv/app"]).stdout
    """

    def __init__(
        self,
        name: str,
        address: str,
        port: int = 22,
        user: str | None = None,
        key_file: Path | None = None,
        known_hosts: Path | None = None,
        verify_host_key: bool = True,
        connect_timeout: float = 10,
        control_dir: Path | None = None,
        persist_s: float = 0,
    ) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.user = user or getpass.getuser()
        self.key_file = Path(key_file) if key_file is not None else None
        self.known_hosts = Path(known_hosts) if known_hosts is not None else None
        self.verify_host_key = verify_host_key
        self.connect_timeout = connect_timeout
        self.persist_s = persist_s if control_dir is not None and persist_s > 0 else 0
        self.control_path: Path | None = None
        if self.persist_s:
            assert control_dir is not None
            self.control_path = control_dir / control_name(
                (self.user, self.address, self.port, self.verify_host_key),
                (self.key_file, self.known_hosts),
            )
        target = SSHTarget(
            name=name,
            address=address,
            port=port,
            user=self.user,
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            verify_host_key=verify_host_key,
            connect_timeout=connect_timeout,
        )
        self._paramiko = ParamikoTransport(target)
        self._openssh = OpenSSHTransport(target, self.control_path, self.persist_s)

    # -- connection -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``address:port``, as error messages show it."""
        return f"{self.address}:{self.port}"

    @property
    def connections_opened(self) -> int:
        """How many paramiko connections this executor has opened (1 while the link stays
        up)."""
        return self._paramiko.connections_opened

    def transport(self) -> paramiko.Transport:
        """The paramiko connection's transport, connecting first if there is none or it died.

        Raises:
            ConnectError: The host cannot be reached.
            AuthError: The host refused the key.
            HostKeyError: The host key is unknown or does not match known_hosts.
        """
        return self._paramiko.transport()

    def close(self) -> None:
        """Close the connection (running commands are cut off); safe to call twice. A later
        command reconnects. A persisted master connection stays up for the next run."""
        self._paramiko.close()

    def __enter__(self) -> SSHExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        stdin: bytes | Path | None = None,
        cwd: str | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run ``argv`` on the host and wait for it, streaming its output line by line.

        Args:
            argv: Program and arguments; each arrives on the host as exactly one argument.
            timeout: Seconds before the command is killed (SIGKILL request) and its channel
                closed.
            check: Raise ``CommandFailed`` when the exit code is not zero.
            env: Extra environment variables (names must match ``[A-Za-z_][A-Za-z0-9_]*``).
            stdin: Bytes sent to the command's standard input (closed afterwards), or a local
                file streamed as its standard input: bulk data, sent through the OpenSSH client
                (:meth:`ssh_argv` with ``bulk``) with the same credentials, C crypto outside
                this process.
            cwd: Remote directory to run in.
            on_output: Called with ``(stream, line)`` for every line as it arrives.

        Returns:
            The exit code and the complete stdout and stderr.

        Raises:
            InputError: Empty argv or an invalid env var name.
            CommandFailed: Non-zero exit (with ``check``), or killed by a signal.
            CommandTimeout: Still running after ``timeout`` seconds.
            ConnectionLost: The connection broke while the command ran (a ConnectError: the
                command may have done part of its work).
            ConnectError, AuthError, HostKeyError: Connecting failed.
        """
        args = list(argv)
        command = remote_command(args, env=env, cwd=cwd)
        if isinstance(stdin, Path) or self.control_path is not None:
            return self._openssh.run(
                args, command, stdin=stdin, timeout=timeout, check=check, on_output=on_output
            )
        return self._paramiko.run(
            args, command, stdin=stdin, timeout=timeout, check=check, on_output=on_output
        )

    # -- files ------------------------------------------------------------------------------

    def put_file(self, local: Path, remote: str, *, mode: int | None = None) -> None:
        """Copy the local file ``local`` to ``remote`` on the host atomically (SFTP upload to
        a temp name in the same directory, then POSIX rename).

        Args:
            local: The file to copy.
            remote: Absolute destination path; its directory must exist.
            mode: Permission bits; default: those of the file being replaced, else 0644.

        Raises:
            OSError: ``local`` cannot be read.
            HostError: The upload or the rename failed on the host.
            ConnectError, AuthError, HostKeyError: Connecting failed.
        """
        with open(local, "rb") as handle:
            self._paramiko.upload(handle, remote, mode)

    def put_bytes(self, data: bytes, remote: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``remote`` on the host atomically; see :meth:`put_file`.

        Args:
            data: The content.
            remote: Absolute destination path; its directory must exist.
            mode: Permission bits; default: those of the file being replaced, else 0644.

        Raises:
            HostError: The upload or the rename failed on the host.
            ConnectError, AuthError, HostKeyError: Connecting failed.
        """
        self._paramiko.upload(BytesIO(data), remote, mode)

    # -- OpenSSH client ---------------------------------------------------------------------

    def ssh_argv(self, *, bulk: bool = False) -> list[str]:
        """The OpenSSH client command (without destination) with this host's credentials and
        host-key policy, e.g. for ``rsync -e``; see
        :meth:`quayside.executors.openssh_transport.OpenSSHTransport.ssh_argv`.

        Returns:
            ``["ssh", "-i", key, "-p", port, "-o", ...]``; append :meth:`destination` and the
            remote command.
        """
        return self._openssh.ssh_argv(bulk=bulk)

    def destination(self) -> str:
        """``user@address`` for the OpenSSH client and rsync.

        Returns:
            The destination string.
        """
        return f"{self.user}@{self.address}"

    def remote_shell(self) -> RemoteShell:
        """The OpenSSH client with this host's credentials and the bulk-transfer options,
        for ``rsync -e``, and the login it takes."""
        return RemoteShell(tuple(self.ssh_argv(bulk=True)), self.user, self.address)

    def __repr__(self) -> str:
        return f"SSHExecutor({self.name!r}, {self.user}@{self.endpoint})"
