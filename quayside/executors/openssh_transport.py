"""The OpenSSH transport: commands run by the ``ssh`` client, for bulk standard input (C crypto
outside this process) and for persisted master connections (``ControlPersist``, see
:mod:`quayside.executors.control`).

Each ``ssh`` is a local process of :mod:`quayside.executors.local_processes` (through
:class:`~quayside.executors.local.LocalExecutor`): it dies with the process that started it, so
a killed controller's connection closes and the remote command sees end-of-file on its input.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from quayside.errors import (
    AuthError,
    CommandFailed,
    CommandTimeout,
    ConnectError,
    ConnectionLost,
    HostError,
    HostKeyError,
    tail,
)
from quayside.executors.base import CommandResult, OutputCallback
from quayside.executors.control import check_argv
from quayside.executors.local import LocalExecutor, display_command
from quayside.executors.quoting import ssh_config_path
from quayside.executors.ssh_target import SSHTarget

#: Ciphers put first for bulk transfers through OpenSSH (``^``: ahead of the defaults).
BULK_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com"

#: Key exchange put first for bulk transfers: what paramiko (the executor's own connections)
#: uses. OpenSSH 9's default, the post-quantum hybrid sntrup761x25519, cost 0.17 CPU-seconds
#: per connection here (20 hosts: 4.3 CPU-s against 0.8 s); the server's others stay acceptable.
BULK_KEX = "curve25519-sha256,curve25519-sha256@libssh.org"

#: Exit status of the OpenSSH client when it could not connect or the connection broke.
OPENSSH_FAILED = 255


class OpenSSHTransport:
    """Runs commands on ``target`` through the OpenSSH client; with ``control_path``, on a
    master connection kept open ``persist_s`` seconds after its last command."""

    def __init__(
        self, target: SSHTarget, control_path: Path | None = None, persist_s: float = 0
    ) -> None:
        self.target = target
        self.control_path = control_path
        self.persist_s = persist_s

    def ssh_argv(self, *, bulk: bool = False) -> list[str]:
        """The OpenSSH client command (without destination) with the host's credentials and
        host-key policy, e.g. for ``rsync -e``.

        Args:
            bulk: for bulk transfers: prefer AES-GCM (hardware-accelerated on current CPUs,
                measured 15-40% less CPU than the default ChaCha20 here) and the key exchange
                paramiko uses (see ``BULK_KEX``), no compression; the server's other
                algorithms remain acceptable.

        Returns:
            ``["ssh", "-i", key, "-p", port, "-o", ...]``; append the destination and the
            remote command.
        """
        t = self.target
        argv = ["ssh"]
        if t.key_file is not None:
            argv += ["-i", str(t.key_file).replace("%", "%%"), "-o", "IdentitiesOnly=yes"]
        argv += ["-p", str(t.port)]
        if not t.verify_host_key:
            argv += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]
        else:
            if t.known_hosts is not None:
                argv += [
                    "-o",
                    f"UserKnownHostsFile={ssh_config_path(t.known_hosts)}",
                    "-o",
                    "GlobalKnownHostsFile=/dev/null",
                ]
            argv += ["-o", "StrictHostKeyChecking=yes"]
        argv += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, math.ceil(t.connect_timeout))}",
            "-o",
            "LogLevel=ERROR",
        ]
        if bulk or self.control_path is not None:
            # a master connection carries bulk transfers too: it is made with their options
            argv += ["-o", f"Ciphers=^{BULK_CIPHERS}", "-o", f"KexAlgorithms=^{BULK_KEX}"]
            argv += ["-o", "Compression=no"]
        if self.control_path is not None:
            argv += [
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={ssh_config_path(self.control_path)}",
                "-o",
                f"ControlPersist={max(1, math.ceil(self.persist_s))}",
                "-o",
                "ServerAliveInterval=15",
            ]
        return argv

    def check_credential_files(self) -> None:
        """Refuse, as the paramiko transport does, a key file or known_hosts file that cannot
        be read (OpenSSH would only say "Permission denied" or "Host key verification
        failed")."""
        t = self.target
        if t.key_file is not None and not os.access(t.key_file, os.R_OK):
            raise AuthError(t.name, f"cannot read key file {t.key_file}: not readable")
        if (
            t.verify_host_key
            and t.known_hosts is not None
            and not os.access(t.known_hosts, os.R_OK)
        ):
            raise HostKeyError(
                t.name, f"cannot read known_hosts file {t.known_hosts}: not readable"
            )

    def master_alive(self) -> bool | None:
        """Whether the shared connection's master still runs (``ssh -O check`` on its control
        socket); None without one (each command has its own connection). A master that does
        not answer within 10 s counts as gone."""
        if self.control_path is None:
            return None
        try:
            checked = LocalExecutor(self.target.name).run(
                check_argv(self.control_path), timeout=10, check=False
            )
        except (CommandTimeout, CommandFailed):
            return False
        return checked.exit_code == 0

    def run(
        self,
        args: Sequence[str],
        command: str,
        *,
        stdin: bytes | Path | None,
        timeout: float | None,
        check: bool,
        on_output: OutputCallback | None,
    ) -> CommandResult:
        """Run the remote command line ``command`` (``args`` quoted) through the OpenSSH
        client with ``stdin`` as its standard input.

        Raises:
            CommandFailed: Non-zero exit (with ``check``), 255 included when the command itself
                exited so (see :func:`client_failed`).
            CommandTimeout: Still running after ``timeout`` seconds (the client is killed).
            ConnectionLost: the connection broke while the command ran (a ConnectError).
            ConnectError, AuthError, HostKeyError: ``ssh`` could not connect.
        """
        t = self.target
        args = list(args)
        self.check_credential_files()
        ssh = [*self.ssh_argv(bulk=True), t.destination(), command]
        try:
            local = LocalExecutor(t.name).run(
                ssh, stdin=stdin, timeout=timeout, check=False, on_output=on_output
            )
        except CommandTimeout as e:
            raise CommandTimeout(
                t.name,
                f"command timed out after {timeout or 0:g}s: {display_command(args)}",
                command=args,
                stderr=e.stderr_tail,
            ) from None
        except CommandFailed as e:  # the client itself could not start
            raise ConnectError(t.name, e.message, command=args) from None
        if local.exit_code == OPENSSH_FAILED and client_failed(local.stderr, self.master_alive()):
            received = len(local.stdout.encode())
            kind = openssh_failure(local.stderr, received)
            reason = (local.stderr.strip().splitlines() or [NO_REASON])[-1]
            where = t.endpoint
            if kind is ConnectionLost:
                text = (
                    f"connection to {where} lost during the command (after {received} bytes "
                    f"of output): {reason}"
                )
            elif kind is AuthError:
                text = f"authentication as {t.user!r} at {where} failed: {reason}"
            elif kind is HostKeyError:
                text = (
                    f"host key of {where} was refused (checked against "
                    f"{t.known_hosts_source}): {reason}"
                )
            else:
                text = f"cannot connect to {where} as {t.user!r} (OpenSSH): {reason}"
            error = kind(t.name, text, command=args)
            error.stderr_tail = tail(local.stderr)  # kept, not repeated after the reason
            raise error
        result = replace(local, argv=tuple(args))
        if check and result.exit_code != 0:
            raise CommandFailed(
                t.name,
                f"command failed: {display_command(args)}",
                command=args,
                exit_code=result.exit_code,
                stderr=result.stderr,
            )
        return result


#: the reason given when OpenSSH printed nothing: it does so when a shared (ControlMaster)
#: connection's master ends mid-command
NO_REASON = "OpenSSH gave no reason (the shared connection's master ended)"

#: how the lines OpenSSH prints (at LogLevel=ERROR) when it fails begin, lower-cased; on the
#: client's own connection such a line comes last, after the remote command's stderr
_CLIENT_LINE_STARTS = (
    "ssh: ",  # "ssh: connect to host ...", "ssh: Could not resolve hostname ..."
    "connection to ",  # "Connection to X closed by remote host."
    "connection closed by ",
    "connection reset by ",
    "connection timed out during banner exchange",
    "kex_exchange_identification:",
    "ssh_exchange_identification:",
    "banner exchange:",
    "client_loop:",
    "packet_write_wait:",
    "ssh_dispatch_run_fatal:",
    "read from remote host ",
    "write failed:",
    "timeout, server ",
    "received disconnect from ",
    "disconnected from ",
    "unable to negotiate with ",
    "host key verification failed",
    "bad owner or permissions on ",
    "mux_client",  # a shared connection's session could not be opened
    "muxclient:",
    "control socket connect",
    "controlsocket ",
)
#: what OpenSSH's authentication failures say ("user@host: Permission denied (publickey).")
_CLIENT_LINE_PARTS = ("permission denied (", "too many authentication failures")
#: what OpenSSH prints, lower-cased, when a session could not be opened on a master that runs
_MUX_LINE_STARTS = ("mux_client", "muxclient:", "control socket connect", "controlsocket ")


def client_failed(stderr: str, master_alive: bool | None) -> bool:
    """Whether an exit 255 of the OpenSSH client is its own failure (it could not connect, or
    the connection broke) rather than the remote command's exit status, which ssh passes
    through unchanged (a hook ending ``exit 255``).

    Args:
        stderr: what the client printed: the remote command's stderr, then ssh's own reason.
        master_alive: on a shared connection, whether its master still runs after the command
            (:meth:`OpenSSHTransport.master_alive`): gone means the connection was lost (the
            client prints nothing then); running means the connection is fine, so the exit is
            the command's unless ssh says the session could not be opened. None: the client's
            own connection, where ssh's reason is the last line it printed.

    >>> client_failed("Connection to 10.0.0.5 closed by remote host.", None)
    True
    >>> client_failed("hook: giving up", None), client_failed("", None)
    (False, False)
    >>> client_failed("", False), client_failed("", True)
    (True, False)
    """
    lines = [line.strip().lower() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if master_alive is not None:
        return not master_alive or last.startswith(_MUX_LINE_STARTS)
    return last.startswith(_CLIENT_LINE_STARTS) or any(p in last for p in _CLIENT_LINE_PARTS)


#: lines OpenSSH prints when it never got a session: the TCP connection or the handshake
#: failed (checked before the lost-connection lines: "kex_exchange_identification:
#: Connection closed by remote host" is a handshake the server refused)
_NOT_CONNECTED = (
    "ssh: connect to host",
    "ssh: could not resolve hostname",
    "kex_exchange_identification",
    "ssh_exchange_identification",
    "banner exchange",
    "connection timed out during banner exchange",
    "unable to negotiate",
    "connection closed by ",  # "Connection closed by <addr> port <n>": before the session
    "control socket connect",
)
#: lines OpenSSH prints when an established connection broke under a running command
#: (seen here with sshd killed mid-command: "Connection to <addr> closed by remote host."
#: for a command printing or reading slowly, "client_loop: send disconnect: Broken pipe"
#: while sending bulk input)
_LOST = (
    "closed by remote host",
    "client_loop:",
    "broken pipe",
    "connection reset",
    "packet_write_wait",
    "timeout, server",
)


def openssh_failure(stderr: str, output_bytes: int = 0) -> type[HostError]:
    """The error an OpenSSH client failure (exit 255, which :func:`client_failed` says is the
    client's own) stands for, from what it printed and how much output the remote command had
    sent: a connection lost under a command that had started (:class:`ConnectionLost`), else
    authentication, the host key, or a connection that could not be made
    (:class:`ConnectError`).

    >>> openssh_failure("Connection to 10.0.0.5 closed by remote host.").__name__
    'ConnectionLost'
    >>> openssh_failure("ssh: connect to host 10.0.0.5 port 22: Connection refused").__name__
    'ConnectError'
    """
    if output_bytes > 0:  # the command ran: a failure of the client now is the connection
        return ConnectionLost
    lines = [line.strip().lower() for line in stderr.splitlines() if line.strip()]
    text = "\n".join(lines)
    if "permission denied" in text or "too many authentication failures" in text:
        return AuthError
    if "host key" in text or "host identification has changed" in text:
        return HostKeyError
    if any(mark in line for line in lines for mark in _NOT_CONNECTED):
        return ConnectError
    if not lines or any(mark in line for line in lines for mark in _LOST):
        return ConnectionLost
    return ConnectError
