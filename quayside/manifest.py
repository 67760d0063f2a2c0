"""Content manifests: what a release directory holds (path, kind, size, sha256, mode, link target).

A manifest is built locally from the release payload, stored next to the release on every host
(``.quayside-manifest.json``) and compared with the next release's manifest to send only what
changed. Paths are relative POSIX paths; symlinks are recorded, never followed; modification
times are not recorded, so the same content always has the same digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from quayside.errors import InputError

#: The file, at the top of a release directory, that holds the release's manifest.
MANIFEST_FILENAME = ".quayside-manifest.json"

FORMAT_VERSION = 1

Kind = Literal["file", "symlink", "dir"]
_KINDS: tuple[Kind, ...] = ("file", "symlink", "dir")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One path in a manifest. ``sha256`` is set for files, ``target`` for symlinks."""

    kind: Kind
    mode: int
    size: int = 0
    sha256: str | None = None
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "mode": self.mode}
        if self.kind == "file":
            data["size"] = self.size
            data["sha256"] = self.sha256
        elif self.kind == "symlink":
            data["target"] = self.target
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        kind = data.get("kind")
        if kind not in _KINDS:
            raise InputError(f"manifest entry has unknown kind {kind!r}")
        try:
            mode = int(data["mode"])
            if kind == "file":
                sha = str(data["sha256"])
                if len(sha) != 64:
                    raise ValueError("bad sha256")
                return cls("file", mode, int(data["size"]), sha)
            if kind == "symlink":
                return cls("symlink", mode, target=str(data["target"]))
            return cls("dir", mode)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"manifest entry {dict(data)!r} is malformed: {e}") from e


@dataclass(frozen=True, eq=False)
class Manifest(Mapping[str, Entry]):
    """A read-only mapping of relative POSIX path -> ``Entry``, sorted by path.

    ``shared`` records the paths that were replaced by links into ``<deploy_root>/shared`` when
    this manifest describes a deployed release; it is part of ``to_json`` and ``digest``, so a
    change of shared paths alone is a change of release. It is not part of the mapping.
    """

    entries: Mapping[str, Entry] = field(default_factory=dict)
    shared: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ordered = {p: self.entries[p] for p in sorted(self.entries)}
        object.__setattr__(self, "entries", ordered)
        shared = tuple(sorted({check_manifest_path(p) for p in self.shared}))
        object.__setattr__(self, "shared", shared)
        #: ``with_shared`` results by shared paths: the same object (and its JSON) each time
        object.__setattr__(self, "_variants", {})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Manifest):
            return self is other or (self.shared == other.shared and self.entries == other.entries)
        if isinstance(other, Mapping):
            return not self.shared and dict(self.entries) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def with_shared(self, paths: Collection[str]) -> Manifest:
        """The same entries, recorded with ``paths`` as the shared paths. Asked again for the
        same paths, it returns the same object, so its JSON and digest are computed once."""
        key = tuple(sorted(set(paths)))
        if key == self.shared:
            return self
        variants: dict[tuple[str, ...], Manifest] = self._variants  # type: ignore[attr-defined]
        found = variants.get(key)
        if found is None:
            found = variants.setdefault(key, Manifest(self.entries, key))
        return found

    def __getitem__(self, path: str) -> Entry:
        return self.entries[path]

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of all regular files."""
        return sum(e.size for e in self.entries.values() if e.kind == "file")

    def files(self) -> list[str]:
        """Paths of regular files."""
        return [p for p, e in self.entries.items() if e.kind == "file"]

    def to_json(self) -> str:
        """Stable, compact JSON (one line, sorted keys): the same content gives the same text.
        Computed once per manifest (it is immutable)."""
        return self._json

    @cached_property
    def _json(self) -> str:
        payload = {
            "version": FORMAT_VERSION,
            "entries": {p: e.to_dict() for p, e in self.entries.items()},
            "shared": list(self.shared),
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str | bytes, *, keep_text: bool = False) -> Manifest:
        """Parse ``to_json`` output; raise ``InputError`` on anything else. With
        ``keep_text``, ``text`` (a str) also becomes what ``to_json`` returns, instead of
        encoding the manifest again: for text Quayside wrote itself (a manifest file on a
        host, the one remembered with the mirror), which is byte for byte what a host holds."""
        try:
            payload = json.loads(text)
        except ValueError as e:
            raise InputError(f"manifest is not valid JSON: {e}") from e
        if not isinstance(payload, dict) or payload.get("version") != FORMAT_VERSION:
            raise InputError("manifest has an unknown format version")
        raw = payload.get("entries")
        if not isinstance(raw, dict):
            raise InputError("manifest has no entries mapping")
        entries: dict[str, Entry] = {}
        for path, data in raw.items():
            if not isinstance(data, dict):
                raise InputError(f"manifest entry {path!r} is not an object")
            entries[check_manifest_path(path)] = Entry.from_dict(data)
        shared = payload.get("shared", [])
        if not isinstance(shared, list) or not all(isinstance(p, str) for p in shared):
            raise InputError("manifest 'shared' is not a list of paths")
        manifest = cls(entries, tuple(shared))
        if keep_text and isinstance(text, str):
            manifest.__dict__["_json"] = text  # the cached_property's slot
        return manifest

    def digest(self) -> str:
        """sha256 of ``to_json()``: equal digests mean equal content, kinds, modes, links and
        shared paths."""
        return self._digest

    @cached_property
    def _digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


#: a normalised relative POSIX path: segments that are neither empty, ``.`` nor ``..``, no NUL
_NORMAL_RELATIVE = re.compile(r"(?!\.\.?(?:/|\Z))[^/\x00]+(?:/(?!\.\.?(?:/|\Z))[^/\x00]+)*\Z")


def check_manifest_path(path: str) -> str:
    """Return ``path`` if it is a normalised relative POSIX path without ``..``; else raise."""
    if not isinstance(path, str) or _NORMAL_RELATIVE.match(path) is None:
        raise InputError(f"manifest path {path!r} is not a normalised relative path")
    return path


def _sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def build_manifest(
    root: Path,
    *,
    exclude: Collection[str] = (MANIFEST_FILENAME,),
    known: Mapping[str, Entry] | None = None,
) -> Manifest:
    """Walk ``root`` (sorted, not following symlinks) and record every file, symlink and dir.

    Args:
        root: the directory to describe; it is not itself an entry.
        exclude: relative paths to leave out (by default the manifest file itself).
        known: entries of files whose content is known not to have changed (e.g. from the
            manifest of the previous commit, minus the paths git says differ): a regular file
            listed here with the same size and mode keeps its sha256 instead of being read.

    Raises:
        InputError: ``root`` is not a directory, or holds something other than files,
            symlinks and directories (a FIFO, a socket, a device).
    """
    top = os.fspath(root)
    if not os.path.isdir(top) or os.path.islink(top):
        raise InputError(f"cannot build a manifest of {top!r}: not a directory")
    skip = set(exclude)
    reuse: Mapping[str, Entry] = known if known is not None else {}
    entries: dict[str, Entry] = {}

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            children = sorted(it, key=lambda d: d.name)
        for child in children:
            rel = prefix + child.name
            if rel in skip:
                continue
            st = child.stat(follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = Entry("symlink", mode, target=os.readlink(child.path))
            elif stat.S_ISREG(st.st_mode):
                was = reuse.get(rel)
                if (
                    was is not None
                    and was.kind == "file"
                    and was.size == st.st_size
                    and was.mode == mode
                    and was.sha256 is not None
                ):
                    entries[rel] = was
                else:
                    entries[rel] = Entry("file", mode, st.st_size, _sha256_file(child.path))
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = Entry("dir", mode)
                walk(child.path, rel + "/")
            else:
                raise InputError(
                    f"{child.path!r} is not a file, symlink or directory",
                    hint="remove special files (FIFOs, sockets, devices) from the payload",
                )

    walk(top, "")
    return Manifest(entries)


@dataclass(frozen=True)
class ManifestDiff:
    """What changes going from ``old`` to ``new``: sorted path lists and byte totals."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    #: bytes of regular files in ``new`` that are added or changed (what must be sent)
    bytes_to_send: int
    #: bytes of regular files in ``old`` that are removed
    bytes_removed: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.added), len(self.changed), len(self.removed)

    def summary(self) -> str:
        """One line, e.g. ``3 added, 1 changed, 2 removed; 12.0 KiB to send, 3.0 KiB removed``."""
        if self.empty:
            return "no change"
        a, c, r = self.counts
        return (
            f"{a} added, {c} changed, {r} removed; "
            f"{human_bytes(self.bytes_to_send)} to send, {human_bytes(self.bytes_removed)} removed"
        )

    def lines(self, limit: int = 50) -> list[str]:
        """``+ path`` / ``~ path`` / ``- path`` lines (at most ``limit``, then ``… N more``)."""
        rows = (
            [f"+ {p}" for p in self.added]
            + [f"~ {p}" for p in self.changed]
            + [f"- {p}" for p in self.removed]
        )
        if len(rows) > limit:
            return rows[:limit] + [f"… {len(rows) - limit} more"]
        return rows


def _entries(m: Mapping[str, Entry]) -> Mapping[str, Entry]:
    """The plain mapping behind a manifest (its lookups cost no Python call)."""
    return m.entries if isinstance(m, Manifest) else m


def diff(old: Mapping[str, Entry] | None, new: Mapping[str, Entry]) -> ManifestDiff:
    """Compare two manifests (``old=None`` means everything in ``new`` is added)."""
    before: Mapping[str, Entry] = _entries(old) if old is not None else {}
    after = _entries(new)
    added = tuple(sorted(after.keys() - before.keys()))
    removed = tuple(sorted(before.keys() - after.keys()))
    # an unchanged file's entry is often the very same object (build_manifest's ``known``)
    changed = tuple(
        sorted(
            p
            for p, e in after.items()
            if (was := before.get(p)) is not None and was is not e and was != e
        )
    )
    send = sum(new[p].size for p in (*added, *changed) if new[p].kind == "file")
    gone = sum(before[p].size for p in removed if before[p].kind == "file")
    return ManifestDiff(added, changed, removed, send, gone)


def removal_roots(paths: Collection[str]) -> list[str]:
    """The minimal sorted subset of ``paths`` such that removing each (recursively) removes all:
    a path under another listed path is dropped."""
    roots: set[str] = set()
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        parts = path.split("/")
        if not any("/".join(parts[:i]) in roots for i in range(1, len(parts))):
            roots.add(path)
    return sorted(roots)


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
