"""The release artifact store: where a built release payload is kept, as one tar object, so a
release can be restored after its directory was pruned from the hosts.

A backend only moves finished archive files in and out (:meth:`ArtifactStore._commit`,
:meth:`ArtifactStore._open`); packing, hashing, verification and safe extraction live here,
the same for every backend.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import stat
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from quayside.artifacts.errors import ArtifactError, ArtifactIntegrityError
from quayside.artifacts.tarball import HashingWriter, file_digest, pack_dir, unpack
from quayside.errors import InputError
from quayside.scratch import TEMP_STALE_AFTER_S, sweep_stale

_KEY = re.compile(r"[A-Za-z0-9._/-]+")
_CHUNK = 1 << 20


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid artifact key.

    A key is made of ``A-Z a-z 0-9 . _ / -``, has no ``..``, no empty or ``.`` part and does
    not start or end with ``/`` — e.g. ``web/prod/20240601-120000-v1.2.3``.

    Raises:
        InputError: The key is not valid.
    """
    if (
        not isinstance(key, str)
        or not _KEY.fullmatch(key)
        or ".." in key
        or key.startswith("/")
        or key.endswith("/")
        or any(part in ("", ".") for part in key.split("/"))
    ):
        raise InputError(
            f"invalid artifact key {key!r}",
            hint="use letters, digits and . _ / - (no '..', no leading or trailing '/')",
        )
    return key


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact.

    Attributes:
        key: The key it is stored under.
        location: Where it is, e.g. ``s3://bucket/prefix/key`` or ``file:///...``.
        sha256: Hex sha256 of the stored object (the archive bytes).
        size: Size of the stored object in bytes.
    """

    key: str
    location: str
    sha256: str
    size: int


def _remove_tree(path: Path) -> None:
    """Remove ``path`` (a tree that may hold read-only directories) if it exists."""

    def make_writable(func: object, failed: str, exc: object) -> None:
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, stat.S_IRWXU)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)
        except OSError:
            pass

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, onerror=make_writable)


class ArtifactStore(ABC):
    """Keeps release payloads as archives under keys.

    Subclasses implement :meth:`exists`, :meth:`delete`, :meth:`location`, :meth:`info` and
    the archive-moving primitives :meth:`_temp_path`, :meth:`_commit` and :meth:`_open`.
    """

    #: gzip (level 1) the archives; plain tar if false.
    compress: bool = True

    # -- the public interface ---------------------------------------------------------------

    def put_dir(self, key: str, source: Path) -> ArtifactRef:
        """Store the directory ``source`` under ``key`` (replacing what was there).

        The directory is packed as a deterministic tar (sorted entries, modification times,
        symlinks as symlinks, relative names), gzip level 1 unless ``compress`` is off,
        streamed through a temporary file; the stored object records its sha256 and size.

        Args:
            key: The artifact key (see :func:`validate_key`).
            source: The release payload directory.

        Returns:
            The stored artifact.

        Raises:
            InputError: The key is invalid, or ``source`` is not a directory or holds a special
                file or a symlink to an absolute path.
            ArtifactError: The store failed (the message names the location).
        """
        validate_key(key)
        self._prepare(key)
        temp = self._temp_path(key)
        try:
            with open(temp, "wb") as out:
                sha256, size = pack_dir(Path(source), out, compress=self.compress)
                out.flush()
                os.fsync(out.fileno())
            self._commit(key, temp, sha256, size)
        finally:
            temp.unlink(missing_ok=True)
        return ArtifactRef(key=key, location=self.location(key), sha256=sha256, size=size)

    def put_archive(self, key: str, archive: Path) -> ArtifactRef:
        """Store an existing tar (plain or gzip) file under ``key`` as it is.

        The archive is not inspected here; :meth:`get_dir` checks every member on the way out.

        Args:
            key: The artifact key.
            archive: Path of the tar file.

        Returns:
            The stored artifact.

        Raises:
            InputError: The key is invalid or ``archive`` is not a file.
            ArtifactError: The store failed.
        """
        validate_key(key)
        if not Path(archive).is_file():
            raise InputError(f"{archive}: not a file", hint="pass the path of a tar archive")
        self._prepare(key)
        temp = self._temp_path(key)
        try:
            with open(archive, "rb") as src, open(temp, "wb") as out:
                writer = HashingWriter(out)
                shutil.copyfileobj(src, writer, _CHUNK)  # type: ignore[misc]
                out.flush()
                os.fsync(out.fileno())
            self._commit(key, temp, writer.sha256, writer.size)
        finally:
            temp.unlink(missing_ok=True)
        return ArtifactRef(
            key=key, location=self.location(key), sha256=writer.sha256, size=writer.size
        )

    def get_dir(self, key: str, dest: Path) -> None:
        """Restore the artifact ``key`` into ``dest``.

        The object is checked against its recorded sha256 and size before anything is
        extracted; extraction goes to a hidden sibling of ``dest`` that is renamed to ``dest``
        when complete, so ``dest`` either holds the whole tree or does not exist. Members are
        extracted with ``tarfile``'s ``data`` filter semantics, relative symlink targets kept
        as they are.

        Args:
            key: The artifact key.
            dest: An absent or empty directory; its parent is created if missing.

        Raises:
            InputError: The key is invalid or ``dest`` exists and is not an empty directory.
            ArtifactNotFoundError: Nothing is stored under ``key``.
            ArtifactIntegrityError: The stored object does not match its sha256 or size.
            UnsafeArchiveError: A member would land outside ``dest``.
            ArtifactError: Anything else failed; ``dest`` is then absent.
        """
        validate_key(key)
        dest = Path(dest)
        dest_was_there = _check_dest(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        pattern = f".{glob.escape(dest.name)}.*.partial"  # restores that crashed
        sweep_stale(dest.parent, pattern=pattern, older_than_s=TEMP_STALE_AFTER_S)
        staging = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.partial"
        try:
            os.mkdir(staging)
            with self._open(key) as (fileobj, expected_sha256, expected_size):
                sha256, size = file_digest(fileobj)
                if (sha256, size) != (expected_sha256, expected_size):
                    raise ArtifactIntegrityError(
                        f"stored object has sha256 {sha256} and {size} bytes, but "
                        f"{expected_sha256} and {expected_size} bytes were recorded",
                        location=self.location(key),
                        key=key,
                    )
                fileobj.seek(0)
                unpack(fileobj, staging, where=self.location(key))
            os.replace(staging, dest)
        except BaseException as e:
            _remove_tree(staging)
            if dest_was_there:
                try:
                    dest.rmdir()
                except OSError:
                    pass
            if isinstance(e, OSError):
                raise ArtifactError(
                    f"cannot restore into {dest}: {e}",
                    location=self.location(key),
                    key=key,
                    hint="check free space and permissions at the destination",
                ) from e
            raise

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an artifact is stored under ``key``.

        Raises:
            InputError: The key is invalid.
            ArtifactError: The store could not be asked.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the artifact ``key``; no error if there is none.

        Raises:
            InputError: The key is invalid.
            ArtifactError: The store failed.
        """

    @abstractmethod
    def location(self, key: str) -> str:
        """Where the artifact ``key`` is (or would be): ``s3://bucket/prefix/key`` or a
        ``file://`` URL.

        Raises:
            InputError: The key is invalid.
        """

    @abstractmethod
    def info(self, key: str) -> ArtifactRef:
        """The stored artifact ``key`` (location, recorded sha256 and size), without fetching
        it.

        Raises:
            InputError: The key is invalid.
            ArtifactNotFoundError: Nothing is stored under ``key``.
            ArtifactError: The store could not be asked.
        """

    # -- what a backend provides ------------------------------------------------------------

    def _prepare(self, key: str) -> None:  # noqa: B027 - optional hook
        """Check, before any work, that ``key`` can be stored (e.g. the bucket exists)."""

    @abstractmethod
    def _temp_path(self, key: str) -> Path:
        """A fresh path for an archive on its way in (a backend that renames into place puts
        it on the same file system). The caller removes it."""

    @abstractmethod
    def _commit(self, key: str, archive: Path, sha256: str, size: int) -> None:
        """Store the finished ``archive`` under ``key`` with its sha256 and size; may move
        ``archive`` away."""

    @abstractmethod
    def _open(self, key: str) -> AbstractContextManager[tuple[BinaryIO, str, int]]:
        """A seekable binary file with the stored object, with the recorded sha256 and size.

        Raises:
            ArtifactNotFoundError: Nothing is stored under ``key``.
        """


def _check_dest(dest: Path) -> bool:
    """Refuse a ``dest`` that exists and is not an empty directory; True if it exists."""
    if dest.is_symlink():
        raise InputError(f"{dest}: is a symlink", hint="restore into an absent or empty directory")
    if not dest.exists():
        return False
    if not dest.is_dir():
        raise InputError(f"{dest}: exists and is not a directory")
    with os.scandir(dest) as it:
        if next(it, None) is not None:
            raise InputError(
                f"{dest}: directory is not empty",
                hint="restore into an absent or empty directory",
            )
    return True


__all__ = ["ArtifactRef", "ArtifactStore", "validate_key"]
