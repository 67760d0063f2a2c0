"""rsync argv builder for pushing a release payload to a host, and a parser for ``--stats``.

The SSH command rsync runs is given as an argv list and joined with ``shlex.join`` into rsync's
``-e`` value: rsync splits that string itself, so that is the one place quoting is needed.
``-s`` (``--protect-args``/``--secluded-args``) sends file names through the rsync protocol
instead of the remote shell's command line, so remote paths are never split or expanded.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quayside.errors import InputError

RSYNC = "rsync"


@dataclass
class RsyncStats:
    """What ``rsync --stats`` reported: regular files and bytes sent, and every other count."""

    files_sent: int = 0
    bytes_sent: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def rsync_push(
    src_dir: Path | str,
    dest: str,
    ssh_argv: Sequence[str] | None,
    *,
    link_dest: str | None = None,
    files_from: Path | None = None,
    delete: bool = False,
    timeout: int | None = None,
) -> list[str]:
    """argv copying the *contents* of ``src_dir`` into ``dest``.

    Args:
        src_dir: local directory (its contents are sent, not the directory itself).
        dest: ``user@host:/path`` (or a local directory when ``ssh_argv`` is None).
        ssh_argv: the OpenSSH command without the host, e.g.
            ``["ssh", "-p", "2222", "-i", key, "-o", "BatchMode=yes"]``; None for a local copy.
        link_dest: directory on the destination holding the previous release: unchanged files
            become hard links to it instead of being sent (absolute, or relative to ``dest``).
        files_from: file listing the paths to send, NUL-separated (see ``files_from_bytes``);
            only those paths (and their parent directories) are sent.
        delete: delete files in ``dest`` that are not in ``src_dir`` (not with ``files_from``).
        timeout: I/O timeout in seconds (rsync ``--timeout``).
    """
    src = os.fspath(src_dir)
    if not src:
        raise InputError("rsync source directory is empty")
    if not dest or dest.startswith("-"):
        raise InputError(f"rsync destination {dest!r} is empty or starts with '-'")
    if delete and files_from is not None:
        raise InputError("rsync --delete cannot be combined with a files-from list")
    argv = [RSYNC, "-a", "-s", "--stats"]
    if ssh_argv is not None:
        if not ssh_argv:
            raise InputError("ssh_argv is empty; pass None for a local copy")
        argv += ["-e", shlex.join(ssh_argv)]
    if link_dest is not None:
        if not link_dest:
            raise InputError("link_dest is empty")
        argv.append(f"--link-dest={link_dest}")
    if files_from is not None:
        argv += ["--from0", f"--files-from={os.fspath(files_from)}"]
    if delete:
        argv.append("--delete")
    if timeout is not None:
        argv.append(f"--timeout={int(timeout)}")
    argv += ["--", src.rstrip("/") + "/" if src != "/" else "/", dest]
    return argv


def remote_dest(user: str | None, host: str, path: str) -> str:
    """``user@host:path`` for rsync (``[addr]`` for IPv6 literals)."""

    def bad(value: str) -> bool:
        return (
            not value
            or value.startswith("-")
            or any(c in value for c in "@/")
            or any(c.isspace() or ord(c) < 32 for c in value)
        )

    if bad(host):
        raise InputError(f"invalid host {host!r} for rsync")
    if ":" in host:  # IPv6 literal
        host = f"[{host.strip('[]')}]"
    if user is not None and (bad(user) or ":" in user):
        raise InputError(f"invalid user {user!r} for rsync")
    if not path.startswith("/"):
        raise InputError(f"remote path {path!r} must be absolute")
    return f"{user}@{host}:{path}" if user else f"{host}:{path}"


def files_from_bytes(paths: Iterable[str]) -> bytes:
    """Content for a ``--from0 --files-from`` file: relative paths, NUL-separated (so names
    with newlines survive)."""
    out = []
    for p in paths:
        if not p or p.startswith("/") or "\x00" in p or ".." in p.split("/"):
            raise InputError(f"path {p!r} cannot be sent: not a relative path inside the release")
        out.append(os.fsencode(p))
    return b"\x00".join(out) + (b"\x00" if out else b"")


_STAT_LINE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z ]*?):\s+(?P<value>[0-9][0-9.,' ]*[KMGT]?)")
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _number(text: str) -> int:
    text = text.strip()
    unit = 1
    if text and text[-1] in _UNITS:
        unit = _UNITS[text[-1]]
        return int(float(text[:-1].replace(",", ".").replace("'", "")) * unit)
    return int(re.sub(r"[^0-9]", "", text) or "0")


def parse_rsync_stats(stdout: str) -> RsyncStats:
    """``RsyncStats`` from ``rsync --stats`` output (rsync 3.0 – 3.4 wording; thousands
    separators allowed). ``files_sent`` counts regular files transferred; ``bytes_sent`` is
    "Total bytes sent"; every other numeric line lands in ``extra`` under a snake_case key."""
    values: dict[str, int] = {}
    for line in stdout.splitlines():
        match = _STAT_LINE.match(line.strip())
        if match and "seconds" not in line:
            key = re.sub(r"\W+", "_", match["key"].strip().lower())
            values[key] = _number(match["value"])
    if "total_bytes_sent" not in values:
        raise InputError("rsync output has no --stats block", hint="run rsync with --stats")
    files = values.pop(
        "number_of_regular_files_transferred", values.pop("number_of_files_transferred", 0)
    )
    sent = values.pop("total_bytes_sent")
    return RsyncStats(files_sent=files, bytes_sent=sent, extra=values)
