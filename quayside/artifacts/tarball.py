"""Deterministic tar packing and safe extraction of release payloads.

Packing: entries in sorted order (directory before its contents), relative names only,
modification times kept (whole seconds), owner 0/0 without names, symlinks kept as symlinks,
PAX format (long names, newlines and non-ASCII in names), optionally gzip level 1 with a zero
timestamp in the gzip header — so the same tree always gives the same bytes. Data streams
through in chunks; nothing holds a whole payload in memory.

Extraction follows ``tarfile``'s ``data`` filter (no absolute names, nothing outside the
destination, no device files, no setuid bits, no group/other write, no ownership) with two
differences: symlink targets that are relative are kept as they are, even when they point
outside the tree (a release links ``../../shared/logs``), and instead of relying on resolving
paths on disk, no member may pass through a symlink of the archive and no name may repeat.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from quayside.artifacts.errors import ArtifactError, UnsafeArchiveError
from quayside.errors import InputError

_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class HashingWriter:
    """A write-only file object that counts and sha256-hashes what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        self._target.write(data)
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def file_digest(fileobj: BinaryIO) -> tuple[str, int]:
    """sha256 (hex) and size of what remains in ``fileobj``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    while chunk := fileobj.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _walk(source: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(archive name, filesystem path, lstat) of everything under ``source``: sorted by name
    (bytewise), each directory right before its contents, symlinks not followed."""
    return _walk_into("", str(source))


def _walk_into(prefix: str, directory: str) -> Iterator[tuple[str, str, os.stat_result]]:
    with os.scandir(directory) as it:
        names = sorted((entry.name for entry in it), key=os.fsencode)
    for name in names:
        path = os.path.join(directory, name)
        arcname = f"{prefix}{name}"
        st = os.lstat(path)
        yield arcname, path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_into(f"{arcname}/", path)


def _tarinfo(arcname: str, path: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        if os.path.isabs(target):
            raise InputError(
                f"{path}: symlink to an absolute path ({target!r}) cannot be kept in a "
                "release artifact",
                hint="make the link relative, or create it with a hook on the host",
            )
        info.type = tarfile.SYMTYPE
        info.linkname = target
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    else:
        raise InputError(
            f"{path}: not a regular file, directory or symlink; cannot be kept in a release "
            "artifact",
            hint="remove sockets, FIFOs and device files from the release payload",
        )
    return info


def pack_dir(source: Path, out: BinaryIO, *, compress: bool = True) -> tuple[str, int]:
    """Write the directory ``source`` as a deterministic tar (gzip level 1 if ``compress``) to
    ``out``, streaming.

    Args:
        source: The directory to pack; its contents become the archive's top level.
        out: A writable binary file object.
        compress: gzip (level 1, no timestamp) if true, a plain tar otherwise.

    Returns:
        The sha256 (hex) and size in bytes of what was written to ``out``.

    Raises:
        InputError: ``source`` is not a directory, or holds something that cannot be kept
            (a socket, FIFO or device file; a symlink to an absolute path).
        ArtifactError: A file could not be read (e.g. it changed while it was being packed).
    """
    if not source.is_dir():
        raise InputError(f"{source}: not a directory", hint="pass the release payload directory")
    writer = HashingWriter(out)
    gz: gzip.GzipFile | None = None
    if compress:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=writer, compresslevel=1, mtime=0)  # type: ignore[arg-type]
    sink: Any = gz if gz is not None else writer
    try:
        with tarfile.open(
            fileobj=sink,
            mode="w|",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
        ) as tar:
            for arcname, path, st in _walk(source):
                info = _tarinfo(arcname, path, st)
                if info.isreg():
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                    with os.fdopen(fd, "rb") as f:
                        now = os.fstat(f.fileno())
                        info.size = now.st_size
                        info.mtime = int(now.st_mtime)
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        if gz is not None:
            gz.close()
    except OSError as e:
        raise ArtifactError(
            f"cannot pack {source}: {e}",
            hint="make sure nothing changes the payload directory while it is stored",
        ) from e
    writer.flush()
    return writer.sha256, writer.size


def _split(name: str) -> list[str] | None:
    """The parts of a member name without ``.`` and empty parts; None for an absolute name or
    one with a ``..`` part."""
    if name.startswith("/") or os.path.isabs(name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return parts


class _MemberCheck:
    """The extraction filter: ``data`` semantics, relative symlink targets kept verbatim."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.seen: set[str] = set()
        self.symlinks: set[str] = set()
        self.files: set[str] = set()
        self.symlink_members: list[tarfile.TarInfo] = []

    def refuse(self, member: tarfile.TarInfo, why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"archive member {member.name!r} {why}", location=self.where)

    def __call__(self, member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
        parts = _split(member.name)
        if parts is None:
            raise self.refuse(member, "would be written outside the destination")
        if not parts:
            return None  # "." — the destination itself
        name = "/".join(parts)
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self.symlinks:
                raise self.refuse(member, "would be written through a symlink")
        if name in self.seen:
            raise self.refuse(member, "appears twice")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise self.refuse(member, "is a special file (device, FIFO)")
        linkname = member.linkname
        if member.issym():
            if not linkname or os.path.isabs(linkname):
                raise self.refuse(member, f"is a symlink to an absolute path {linkname!r}")
        if member.islnk():
            target = _split(linkname)
            if target is None or "/".join(target) not in self.files:
                raise self.refuse(member, f"is a hard link to {linkname!r} outside the archive")
            linkname = "/".join(target)
        # tarfile's data filter for everything but the symlink target (checked above); "." as
        # a stand-in target always stays inside.
        stand_in = member.replace(
            name=name, linkname="." if member.issym() else linkname, deep=False
        )
        try:
            checked = tarfile.data_filter(stand_in, dest_path)
        except tarfile.FilterError as e:
            raise self.refuse(member, f"is refused: {e}") from e
        if member.isdir():
            checked = checked.replace(mode=(member.mode & 0o755) | 0o700, deep=False)
        self.seen.add(name)
        if member.issym():
            self.symlinks.add(name)
            checked = checked.replace(linkname=member.linkname, deep=False)
            self.symlink_members.append(checked)
        elif member.isreg() or member.islnk():
            self.files.add(name)
        return checked


def unpack(archive: BinaryIO, dest: Path, *, where: str = "") -> None:
    """Extract the tar (plain or gzip) in ``archive`` into the existing empty directory
    ``dest``.

    Args:
        archive: A readable binary file object positioned at the archive's start.
        dest: An empty directory; the caller removes it if this raises.
        where: The artifact's location, for error messages.

    Raises:
        UnsafeArchiveError: A member would land outside ``dest`` or is a special file.
        ArtifactError: The archive is damaged or a file could not be written.
    """
    check = _MemberCheck(where)
    try:
        with tarfile.open(fileobj=archive, mode="r|*", encoding="utf-8", errorlevel=2) as tar:
            tar.extractall(dest, filter=check)
    except ArtifactError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise ArtifactError(
            f"cannot extract the archive into {dest}: {e}",
            location=where or None,
            hint="check free space and permissions at the destination; if the archive is "
            "damaged, store the release again",
        ) from e
    for member in check.symlink_members:
        path = dest / member.name
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
