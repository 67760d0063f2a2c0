"""The paramiko transport: one lazily opened SSH connection per executor, commands on
concurrent channels of it (sent as :func:`quayside.executors.quoting.remote_command` made
them), and atomic file uploads over SFTP.

Key authentication only; the host key is checked against ``known_hosts`` unless the host
explicitly opts out. Connection failures become the typed errors of :mod:`quayside.errors`.
"""

from __future__ import annotations

import logging
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import BinaryIO, NoReturn

import paramiko

from quayside.errors import (
    AuthError,
    CommandFailed,
    CommandTimeout,
    ConnectError,
    ConnectionLost,
    HostError,
    HostKeyError,
)
from quayside.executors.base import CommandResult, OutputCallback
from quayside.executors.local import DEFAULT_FILE_MODE, LineCollector, display_command, start_thread
from quayside.executors.paramiko_channel import drain, remaining, send_signal, send_stdin
from quayside.executors.ssh_target import SYSTEM_KNOWN_HOSTS, SSHTarget

#: The executor's logger: what concerns a host reads the same whichever transport reached it.
log = logging.getLogger("quayside.executors.ssh")


class UnknownHostKey(paramiko.SSHException):
    """Raised by :class:`RejectUnknownHostKey` for a host missing from known_hosts."""


class RejectUnknownHostKey(paramiko.RejectPolicy):
    """paramiko's RejectPolicy with a distinct exception type, so it maps to HostKeyError."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise UnknownHostKey(f"{hostname} not found in known_hosts")


class AcceptAndWarn(paramiko.MissingHostKeyPolicy):
    """The explicit opt-out (``verify_host_key: false``): accept any key, log a warning."""

    def __init__(self, host: str) -> None:
        self.host = host

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        log.warning(
            "%s: host key verification is off; accepting %s key %s for %s",
            self.host,
            key.get_name(),
            key.fingerprint,
            hostname,
        )


class ParamikoTransport:
    """One reused paramiko connection to ``target``, reopened when it died.

    Safe to share between threads: each command or upload opens its own channel.
    """

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        #: How many SSH connections have been opened (1 while the link stays up).
        self.connections_opened = 0
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None

    # -- connection -------------------------------------------------------------------------

    def transport(self) -> paramiko.Transport:
        """The connection's transport, connecting first if there is none or it died.

        Raises:
            ConnectError: The host cannot be reached.
            AuthError: The host refused the key.
            HostKeyError: The host key is unknown or does not match known_hosts.
        """
        with self._lock:
            if self._client is not None:
                current = self._client.get_transport()
                if current is not None and current.is_active():
                    return current
                self._client.close()
                self._client = None
            client = self._connect()
            transport = client.get_transport()
            assert transport is not None
            transport.set_keepalive(30)
            self._client = client
            self.connections_opened += 1
            return transport

    def _connect(self) -> paramiko.SSHClient:
        t = self.target
        client = paramiko.SSHClient()
        try:
            self._configure_host_keys(client)
            pkey = self._load_key()
            client.connect(
                t.address,
                port=t.port,
                username=t.user,
                pkey=pkey,
                allow_agent=pkey is None,
                look_for_keys=pkey is None,
                timeout=t.connect_timeout,
                banner_timeout=t.connect_timeout,
                auth_timeout=t.connect_timeout,
            )
        except BaseException as e:
            client.close()
            if isinstance(e, HostError):
                raise
            mapped = self._connect_error(e)
            if mapped is None:
                raise
            raise mapped from e
        return client

    def _configure_host_keys(self, client: paramiko.SSHClient) -> None:
        t = self.target
        if not t.verify_host_key:
            # Load nothing: every key goes through the policy, which accepts and warns.
            client.set_missing_host_key_policy(AcceptAndWarn(t.name))
            return
        if t.known_hosts is not None:
            try:
                client.load_host_keys(str(t.known_hosts))
            except OSError as e:
                raise HostKeyError(
                    t.name, f"cannot read known_hosts file {t.known_hosts}: {e.strerror or e}"
                ) from e
        else:
            for path in SYSTEM_KNOWN_HOSTS:
                path = path.expanduser()
                if path.is_file():
                    client.load_system_host_keys(str(path))
        client.set_missing_host_key_policy(RejectUnknownHostKey())

    def _load_key(self) -> paramiko.PKey | None:
        t = self.target
        if t.key_file is None:
            return None
        try:
            return paramiko.PKey.from_path(t.key_file)
        except paramiko.PasswordRequiredException as e:
            raise AuthError(
                t.name, f"key file {t.key_file} is encrypted; use a key without passphrase"
            ) from e
        except OSError as e:
            raise AuthError(t.name, f"cannot read key file {t.key_file}: {e.strerror or e}") from e
        except (paramiko.SSHException, ValueError) as e:
            raise AuthError(t.name, f"key file {t.key_file} is not a usable key: {e}") from e

    def _connect_error(self, e: BaseException) -> HostError | None:
        """The typed error for an exception raised while connecting, or None to re-raise."""
        t = self.target
        where = t.endpoint
        if isinstance(e, paramiko.BadHostKeyException):
            return HostKeyError(
                t.name,
                f"host key of {where} does not match {t.known_hosts_source} "
                f"(got {e.key.get_name()} {e.key.fingerprint}) - possible man-in-the-middle",
            )
        if isinstance(e, UnknownHostKey):
            return HostKeyError(t.name, f"host key of {where} is not in {t.known_hosts_source}")
        if isinstance(e, paramiko.AuthenticationException):
            return AuthError(
                t.name, f"authentication as {t.user!r} at {where} failed: {first_line(e)}"
            )
        if isinstance(e, socket.gaierror):
            return ConnectError(
                t.name, f"cannot resolve {t.address!r} ({where}): {e.strerror or e}"
            )
        if isinstance(e, TimeoutError):
            return ConnectError(
                t.name, f"connecting to {where} timed out after {t.connect_timeout:g}s"
            )
        if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
            return ConnectError(t.name, f"cannot connect to {where}: connection refused")
        if isinstance(e, OSError):
            return ConnectError(t.name, f"cannot connect to {where}: {e.strerror or e}")
        if isinstance(e, paramiko.SSHException | EOFError):
            return ConnectError(
                t.name, f"SSH handshake with {where} failed: {first_line(e) or 'closed'}"
            )
        return None

    def close(self) -> None:
        """Close the connection (running commands are cut off); safe to call twice. A later
        command reconnects."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _drop(self, transport: paramiko.Transport) -> None:
        """Forget the connection if it is still ``transport`` (it turned out to be dead)."""
        with self._lock:
            if self._client is not None and self._client.get_transport() is transport:
                self._client.close()
                self._client = None

    def open_channel(self) -> paramiko.Channel:
        """A new session channel on the connection.

        Raises:
            ConnectError: No session could be opened (after one reconnect).
            AuthError, HostKeyError: Connecting failed.
        """
        # A reused connection can be dead without paramiko having noticed yet (the host
        # rebooted): nothing has run at this point, so one retry on a new connection is safe.
        for attempt in (1, 2):
            opened_before = self.connections_opened
            transport = self.transport()
            try:
                return transport.open_session(timeout=self.target.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as e:
                fresh = self.connections_opened != opened_before
                if fresh or attempt == 2:
                    raise ConnectError(
                        self.target.name,
                        f"cannot open a session on {self.target.endpoint}: "
                        f"{first_line(e) or 'closed'}",
                    ) from e
                self._drop(transport)
        raise AssertionError("unreachable")

    # -- commands ---------------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        command: str,
        *,
        stdin: bytes | None,
        timeout: float | None,
        check: bool,
        on_output: OutputCallback | None,
    ) -> CommandResult:
        """Run the remote command line ``command`` (``args`` quoted) on a new channel and
        wait for it, streaming its output; see :meth:`quayside.executors.ssh.SSHExecutor.run`.

        Raises:
            CommandFailed: Non-zero exit (with ``check``), or killed by a signal.
            CommandTimeout: Still running after ``timeout`` seconds (sent SIGKILL, closed).
            ConnectionLost: The connection broke while the command ran (a ConnectError).
            ConnectError, AuthError, HostKeyError: Connecting failed.
        """
        t = self.target
        args = list(args)
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        lock = threading.Lock()
        out = LineCollector("stdout", on_output, lock)
        err = LineCollector("stderr", on_output, lock)
        with self.open_channel() as channel:
            try:
                channel.exec_command(command)
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise ConnectError(
                    t.name, f"cannot start a command on {t.endpoint}: {first_line(e)}"
                ) from e
            threads = [
                start_thread(lambda: drain(channel.recv, out), "quayside-ssh-stdout"),
                start_thread(lambda: drain(channel.recv_stderr, err), "quayside-ssh-stderr"),
            ]
            if stdin is not None:
                threads.append(start_thread(lambda: send_stdin(channel, stdin), "quayside-ssh-in"))
            else:
                channel.shutdown_write()
            finished = channel.status_event.wait(remaining(deadline))
            for thread in threads:
                thread.join(remaining(deadline))
            if not finished or any(thread.is_alive() for thread in threads):
                send_signal(channel, "KILL")
                channel.close()
                for thread in threads:
                    thread.join(5)
                raise CommandTimeout(
                    t.name,
                    f"command timed out after {timeout:g}s: {display_command(args)}",
                    command=args,
                    stderr=err.text(),
                )
            exit_code = channel.recv_exit_status()
        transport = channel.get_transport()
        if exit_code == -1 and (transport is None or not transport.is_active()):
            received = len(out.text().encode()) + len(err.text().encode())
            raise ConnectionLost(
                t.name,
                f"connection to {t.endpoint} lost during the command (after {received} bytes "
                f"of output): {display_command(args)}",
                command=args,
                stderr=err.text(),
            )
        result = CommandResult(
            host=t.name,
            argv=tuple(args),
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            duration_s=time.monotonic() - start,
        )
        if check and exit_code != 0:
            what = "command failed" if exit_code != -1 else "command killed by a signal"
            raise CommandFailed(
                t.name,
                f"{what}: {display_command(args)}",
                command=args,
                exit_code=exit_code,
                stderr=result.stderr,
            )
        return result

    # -- files ------------------------------------------------------------------------------

    def upload(self, source: BinaryIO, remote: str, mode: int | None) -> None:
        """Write ``source`` to ``remote`` atomically: SFTP upload to a temp name in the same
        directory, then POSIX rename; ``mode`` None keeps the replaced file's (else 0644).

        Raises:
            HostError: The upload or the rename failed on the host.
            ConnectError, AuthError, HostKeyError: Connecting failed.
        """
        target = PurePosixPath(remote)
        tmp = str(target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp")
        with self._sftp() as sftp:
            try:
                if mode is None:
                    mode = existing_mode(sftp, remote)
                sftp.putfo(source, tmp, confirm=True)
                sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, remote)
            except (OSError, paramiko.SSHException) as e:
                try:
                    sftp.remove(tmp)
                except (OSError, paramiko.SSHException):
                    pass
                raise HostError(
                    self.target.name, f"cannot write {remote} over SFTP: {first_line(e)}"
                ) from e

    @contextmanager
    def _sftp(self) -> Iterator[paramiko.SFTPClient]:
        channel = self.open_channel()
        try:
            channel.invoke_subsystem("sftp")
            sftp = paramiko.SFTPClient(channel)
        except (paramiko.SSHException, EOFError, OSError) as e:
            channel.close()
            raise ConnectError(
                self.target.name,
                f"cannot open SFTP on {self.target.endpoint}: {first_line(e) or 'closed'}",
            ) from e
        with sftp:
            yield sftp


def first_line(e: BaseException) -> str:
    """The first line of an exception's text, for one-line error messages."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def existing_mode(sftp: paramiko.SFTPClient, path: str) -> int:
    """Permission bits of ``path`` on the host, or DEFAULT_FILE_MODE if it does not exist."""
    try:
        attrs = sftp.stat(path)
    except FileNotFoundError:
        return DEFAULT_FILE_MODE
    if attrs.st_mode is None:
        return DEFAULT_FILE_MODE
    return stat.S_IMODE(attrs.st_mode)
