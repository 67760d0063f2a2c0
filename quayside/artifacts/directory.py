"""The embedded artifact store: archives as files under a directory (by default
``$QUAYSIDE_HOME/artifacts``).

Key ``web/prod/r1`` is kept as ``<root>/web/prod/r1.artifact`` with its sha256 and size in
``<root>/web/prod/r1.artifact.json``. Both are written to a temporary name in the same
directory and renamed into place, the object first, so a reader never sees a half-written
file and an artifact exists only once its record does.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from quayside.artifacts.errors import ArtifactError, ArtifactNotFoundError
from quayside.artifacts.store import ArtifactRef, ArtifactStore, validate_key
from quayside.scratch import TEMP_STALE_AFTER_S, sweep_stale
from quayside.settings import load_settings

OBJECT_SUFFIX = ".artifact"
RECORD_SUFFIX = ".artifact.json"


class DirectoryStore(ArtifactStore):
    """Artifacts as files under ``root``.

    Args:
        root: The store's directory (created on first write); default
            ``load_settings().artifacts_dir``.
        compress: gzip level 1 (default) or plain tar.

    Example:
        >>> store = DirectoryStore(Path("/var/lib/quayside/artifacts"))
        >>> ref = store.put_dir("web/prod/r42", Path("build/web"))
        >>> store.get_dir("web/prod/r42", Path("/tmp/restore"))
    """

    def __init__(self, root: Path | None = None, *, compress: bool = True) -> None:
        base = Path(root) if root is not None else load_settings().artifacts_dir
        self.root = base.expanduser().resolve()
        self.compress = compress

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.root)!r})"

    def _object_path(self, key: str) -> Path:
        return self.root / (validate_key(key) + OBJECT_SUFFIX)

    def _record_path(self, key: str) -> Path:
        return self.root / (validate_key(key) + RECORD_SUFFIX)

    def _error(self, key: str, action: str, e: OSError) -> ArtifactError:
        return ArtifactError(
            f"cannot {action}: {e.strerror or e}",
            location=self.location(key),
            key=key,
            hint=f"check that {self.root} exists, is writable and has free space",
        )

    def location(self, key: str) -> str:
        return self._object_path(key).as_uri()

    def exists(self, key: str) -> bool:
        return self._record_path(key).is_file() and self._object_path(key).is_file()

    def info(self, key: str) -> ArtifactRef:
        sha256, size = self._read_record(key)
        return ArtifactRef(key=key, location=self.location(key), sha256=sha256, size=size)

    def delete(self, key: str) -> None:
        record, obj = self._record_path(key), self._object_path(key)
        try:
            record.unlink(missing_ok=True)
            obj.unlink(missing_ok=True)
        except OSError as e:
            raise self._error(key, "delete", e) from e
        parent = obj.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def _read_record(self, key: str) -> tuple[str, int]:
        record = self._record_path(key)
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                "no artifact stored under this key", location=self.location(key), key=key
            ) from None
        except (OSError, ValueError) as e:
            raise ArtifactError(
                f"cannot read the artifact record {record.name}: {e}",
                location=self.location(key),
                key=key,
                hint="store the release again",
            ) from e
        return str(data["sha256"]), int(data["size"])

    def _temp_path(self, key: str) -> Path:
        obj = self._object_path(key)
        try:
            obj.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._error(key, "create the store directory", e) from e
        sweep_stale(obj.parent, pattern=".*.tmp", older_than_s=TEMP_STALE_AFTER_S)
        return obj.parent / f".{obj.name}.{secrets.token_hex(6)}.tmp"

    def _commit(self, key: str, archive: Path, sha256: str, size: int) -> None:
        obj, record = self._object_path(key), self._record_path(key)
        body = {
            "key": key,
            "sha256": sha256,
            "size": size,
            "compression": "gzip" if self.compress else "none",
        }
        record_temp = record.parent / f".{record.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.replace(archive, obj)
            with open(record_temp, "w", encoding="utf-8") as f:
                json.dump(body, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(record_temp, record)
            fd = os.open(obj.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise self._error(key, "store", e) from e
        finally:
            record_temp.unlink(missing_ok=True)

    @contextmanager
    def _open(self, key: str) -> Iterator[tuple[BinaryIO, str, int]]:
        sha256, size = self._read_record(key)
        try:
            f = open(self._object_path(key), "rb")
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                "the artifact's record exists but its object is missing",
                location=self.location(key),
                key=key,
                hint="store the release again",
            ) from None
        with f:
            yield f, sha256, size
