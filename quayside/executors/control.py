"""Persistent SSH connections: where OpenSSH's control sockets live, and their names.

With ``persist_s`` set on a host, :class:`quayside.executors.ssh.SSHExecutor` runs commands
through the OpenSSH client with ``ControlMaster=auto`` and ``ControlPersist``: the first command
opens a master connection that stays up that long after the last command that used it, and
later commands - of the same run, or of the next run in another process - open a session on it
instead of a new connection (measured here: 8 ms for a command instead of 0.3 s with a new
handshake). Ansible does the same by default (ControlPersist=60s).

A control socket lets whoever can open it run commands as the remote user without logging in:
its directory is created 0700 and must belong to this user. Its name hashes everything that
decides which connection it is - user, address, port, the key file's path and content, the
known_hosts path and content, host-key checking - so a changed key or known_hosts never reuses a
connection made with the old one.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from quayside.errors import InputError
from quayside.executors.quoting import ssh_config_path

#: OpenSSH appends up to 17 characters to a control path while it creates the socket, and a
#: Unix socket path has at most 107 bytes on Linux: control directories longer than this fall
#: back to a short one under the system temp directory
MAX_DIR_LENGTH = 64
_NAME_LENGTH = 20


def control_dir(home: Path) -> Path:
    """The directory for the control sockets of data directory ``home``, created 0700:
    ``<home>/ssh``, or ``<tmp>/quayside-ssh-<uid>/<hash of home>`` when that path is too long
    for a socket.

    Raises:
        InputError: the directory exists but belongs to another user or others can enter it.
    """
    preferred = home / "ssh"
    if len(str(preferred)) <= MAX_DIR_LENGTH:
        return _private_dir(preferred)
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    parent = _private_dir(Path(tempfile.gettempdir()) / f"quayside-ssh-{os.getuid()}")
    return _private_dir(parent / digest)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise InputError(
            f"SSH control directory {path} is not a directory of this user",
            hint="remove it, or set QUAYSIDE_HOME to a data directory of your own",
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def control_name(identity: Sequence[object], files: Sequence[Path | None]) -> str:
    """The socket name for a connection: a hash of ``identity`` (user, address, port, options)
    and of the paths and contents of ``files`` (key, known_hosts; missing ones count as
    absent)."""
    h = hashlib.sha256()
    for part in identity:
        h.update(repr(part).encode() + b"\0")
    for path in files:
        h.update(b"file\0" + str(path).encode() + b"\0")
        if path is None:
            continue
        try:
            h.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            h.update(b"unreadable")
    return "cm-" + h.hexdigest()[:_NAME_LENGTH]


def control_sockets(directory: Path) -> list[Path]:
    """The control sockets in ``directory`` (what :func:`close_argv` can close)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    out = []
    for entry in entries:
        try:
            is_socket = stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode)
        except OSError:
            continue
        if entry.name.startswith("cm-") and is_socket:
            out.append(Path(entry.path))
    return sorted(out)


def close_argv(socket: Path) -> list[str]:
    """``ssh -O exit`` for the master listening on ``socket`` (the destination is not used)."""
    return ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "quayside-control"]


def check_argv(socket: Path) -> list[str]:
    """``ssh -O check`` for the master listening on ``socket``: exit 0 while it runs."""
    return [
        "ssh",
        "-o",
        f"ControlPath={ssh_config_path(socket)}",
        "-O",
        "check",
        "quayside-control",
    ]


def close_masters(directory: Path, timeout_s: float = 5) -> int:
    """Ask every master connection with a socket in ``directory`` to exit (``quayside up``
    does on its way out); returns how many were asked. Best effort."""
    import subprocess

    from quayside.executors import local_processes

    asked = 0
    for sock in control_sockets(directory):
        try:
            local_processes.run(close_argv(sock), timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            continue
        asked += 1
    return asked
