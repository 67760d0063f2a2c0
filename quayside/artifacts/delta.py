"""Release payloads kept as deltas: a release that changed a few files stores only those files.

A payload artifact is either *whole* (the payload directory, as :meth:`ArtifactStore.put_dir`
packs it) or a *delta*: the added and changed paths of the payload, its full manifest file,
and ``.quayside-delta.json`` naming the base artifact and the removed paths. Restoring a delta
restores its base (recursively), removes and replaces what the delta says, and then checks the
result against the release's manifest: every path, kind, mode, size, sha256 and link target,
so a restore gives exactly the payload that was deployed or fails.

A delta chain is at most ``MAX_DEPTH`` deep (then the next release is stored whole), and a
delta is only made when it is at most half the payload's bytes. Deleting an artifact that a
delta names as its base breaks that delta's restore: anything that expires artifacts must
keep every base of a kept artifact.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quayside.artifacts.errors import ArtifactError, ArtifactIntegrityError, UnsafeArchiveError
from quayside.artifacts.store import ArtifactRef, ArtifactStore, validate_key
from quayside.errors import InputError
from quayside.manifest import (
    MANIFEST_FILENAME,
    Manifest,
    build_manifest,
    check_manifest_path,
    diff,
)

#: the delta's own description, at the top of a delta artifact
DELTA_FILENAME = ".quayside-delta.json"
DELTA_FORMAT = 1
#: a release whose base is this deep in a chain is stored whole
MAX_DEPTH = 8
#: restoring refuses chains longer than this (a loop or a corrupted store)
_RESTORE_LIMIT = 64


@dataclass(frozen=True)
class StoredPayload:
    """A payload that is in the store: its key, its depth in a delta chain (0 = whole) and
    its manifest (the payload's, without shared paths)."""

    key: str
    depth: int
    manifest: Manifest


def delta_base(
    store: ArtifactStore,
    manifest: Manifest,
    candidate: StoredPayload | None,
    *,
    max_depth: int = MAX_DEPTH,
) -> StoredPayload | None:
    """``candidate`` if a delta against it is worth storing: it is shallow enough, still in
    the store, and the changed files are at most half of the payload's bytes. Else None.

    Raises:
        ArtifactError: the store could not be asked.
    """
    if candidate is None or candidate.depth >= max_depth:
        return None
    change = diff(candidate.manifest, manifest)
    if change.bytes_to_send * 2 > manifest.total_bytes:
        return None
    return candidate if store.exists(candidate.key) else None


def put_payload(
    store: ArtifactStore,
    key: str,
    payload_dir: Path,
    manifest: Manifest,
    base: StoredPayload | None,
) -> tuple[ArtifactRef, StoredPayload]:
    """Store the payload under ``key``: as a delta against ``base`` (as chosen by
    :func:`delta_base`), or whole when ``base`` is None.

    Args:
        store: the artifact store.
        key: the artifact key of this release.
        payload_dir: the built payload; it holds the manifest file.
        manifest: the payload's manifest (as in its manifest file).
        base: the stored payload to make a delta against, or None.

    Returns:
        The stored artifact and what a later delta may use as its base.

    Raises:
        InputError: invalid key, or a payload the store cannot keep.
        ArtifactError: the store failed.
    """
    validate_key(key)
    if base is None:
        return store.put_dir(key, payload_dir), StoredPayload(key, 0, manifest)
    change = diff(base.manifest, manifest)
    staging = payload_dir.parent / f".{payload_dir.name}.delta-{secrets.token_hex(6)}"
    try:
        staging.mkdir()
        for rel in sorted({*change.added, *change.changed}):
            _stage(payload_dir, staging, rel)
        _stage(payload_dir, staging, MANIFEST_FILENAME)
        description = {
            "format": DELTA_FORMAT,
            "base": base.key,
            "depth": base.depth + 1,
            "removed": list(change.removed),
        }
        (staging / DELTA_FILENAME).write_text(json.dumps(description, sort_keys=True))
        ref = store.put_dir(key, staging)
    except OSError as e:
        raise ArtifactError(f"cannot prepare the delta of {key}: {e}", key=key) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ref, StoredPayload(key, base.depth + 1, manifest)


def _stage(payload_dir: Path, staging: Path, rel: str) -> None:
    """Put ``rel`` of the payload into the delta's staging directory: files hard-linked
    (copied across file systems), symlinks recreated, directories created with their mode."""
    source, target = payload_dir / rel, staging / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    st = os.lstat(source)
    if stat.S_ISDIR(st.st_mode):
        target.mkdir(exist_ok=True)
        target.chmod(stat.S_IMODE(st.st_mode))
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), target)
    else:
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def get_payload(store: ArtifactStore, key: str, dest: Path) -> Manifest:
    """Restore the payload stored under ``key`` into ``dest`` (absent or empty), following
    its delta chain, and check it against its manifest.

    Returns:
        The payload's manifest.

    Raises:
        ArtifactNotFoundError: the artifact or a base of it is missing.
        ArtifactIntegrityError: the restored tree does not match the release's manifest, or
            the delta description is malformed.
        UnsafeArchiveError: a delta would write through a symlink.
        ArtifactError: anything else failed; ``dest`` is then absent.
    """
    try:
        manifest = _restore(store, key, Path(dest), 0)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return manifest


def _restore(store: ArtifactStore, key: str, dest: Path, depth: int) -> Manifest:
    if depth > _RESTORE_LIMIT:
        raise ArtifactIntegrityError(
            f"delta chain longer than {_RESTORE_LIMIT} artifacts", location=store.location(key)
        )
    store.get_dir(key, dest)
    delta_file = dest / DELTA_FILENAME
    if not delta_file.is_file() or delta_file.is_symlink():
        return _manifest_of(store, key, dest)
    description = _description(store, key, delta_file)
    overlay = dest.parent / f".{dest.name}.overlay-{secrets.token_hex(6)}"
    os.replace(dest, overlay)
    try:
        _restore(store, description["base"], dest, depth + 1)
        for rel in description["removed"]:
            _remove(dest, rel, store.location(key))
        _overlay(overlay, dest, store.location(key))
        manifest = _manifest_of(store, key, dest)
        for rel, entry in manifest.items():  # modes of directories the delta only passed
            if entry.kind == "dir":
                (dest / rel).chmod(entry.mode)
        got = build_manifest(dest)
        if got != manifest:
            change = diff(manifest, got)
            raise ArtifactIntegrityError(
                f"the restored payload does not match its manifest ({change.summary()}: "
                f"{', '.join(change.lines(5))})",
                location=store.location(key),
                key=key,
            )
        return manifest
    finally:
        shutil.rmtree(overlay, ignore_errors=True)


def _description(store: ArtifactStore, key: str, path: Path) -> dict[str, Any]:
    """The delta description, validated: base key, removed paths (normalised, relative)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != DELTA_FORMAT:
            raise ValueError("unknown format")
        base = validate_key(str(data["base"]))
        removed = data["removed"]
        if not isinstance(removed, list):
            raise ValueError("removed is not a list")
        checked = [check_manifest_path(p) for p in removed]
    except (ValueError, KeyError, TypeError, InputError) as e:
        raise ArtifactIntegrityError(
            f"malformed delta description: {e}", location=store.location(key), key=key
        ) from e
    path.unlink()
    return {"base": base, "removed": checked}


def _manifest_of(store: ArtifactStore, key: str, dest: Path) -> Manifest:
    try:
        return Manifest.from_json((dest / MANIFEST_FILENAME).read_text())
    except (OSError, InputError) as e:
        raise ArtifactIntegrityError(
            f"the payload has no readable manifest: {e}", location=store.location(key), key=key
        ) from e


def _no_symlink_on_the_way(dest: Path, rel: str, where: str) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        if (dest / "/".join(parts[:i])).is_symlink():
            raise UnsafeArchiveError(f"delta path {rel!r} passes through a symlink", location=where)


def _remove(dest: Path, rel: str, where: str) -> None:
    _no_symlink_on_the_way(dest, rel, where)
    path = dest / rel
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()


def _overlay(overlay: Path, dest: Path, where: str) -> None:
    """Move every path of ``overlay`` into ``dest`` (top-down), replacing what is there."""
    for top, dirs, files in os.walk(overlay):
        dirs.sort()
        rel_top = os.path.relpath(top, overlay)
        for name in sorted(dirs) + sorted(files):
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            _no_symlink_on_the_way(dest, rel, where)
            source, target = Path(top) / name, dest / rel
            source_is_dir = source.is_dir() and not source.is_symlink()
            if target.is_dir() and not target.is_symlink():
                if source_is_dir:
                    continue
                shutil.rmtree(target)
            elif source_is_dir:
                if target.is_symlink() or target.exists():
                    target.unlink()
                target.mkdir()
                target.chmod(stat.S_IMODE(source.lstat().st_mode))
                continue
            os.replace(source, target)


def remember(path: Path, stored: StoredPayload) -> None:
    """Keep ``stored`` in the file ``path`` (atomically): the base for the next delta of the
    same app/environment. Best effort: a lost file only means the next payload is whole."""
    body = json.dumps(
        {"key": stored.key, "depth": stored.depth, "manifest": stored.manifest.to_json()}
    )
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(body)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def recall(path: Path, known: Manifest | None = None) -> StoredPayload | None:
    """What :func:`remember` kept in ``path``, or None (absent or unreadable). ``known`` is a
    manifest the caller already holds: when it is the remembered one it is used as it is."""
    try:
        data = json.loads(path.read_text())
        key = validate_key(str(data["key"]))
        depth = int(data["depth"])
        text = str(data["manifest"])
        manifest = known if known is not None and known.to_json() == text else None
        if manifest is None:
            manifest = Manifest.from_json(text)
    except (OSError, ValueError, KeyError, TypeError, InputError):
        return None
    return StoredPayload(key, depth, manifest)
