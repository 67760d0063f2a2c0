"""The payload of a stage round trip, packed: a tar of the changed files and the manifest (in
memory for small changes, a file written once by GNU tar for large ones), and the manifest
as a patch of the one the host holds."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quayside.commands.tar import create_archive
from quayside.deploy import scripts
from quayside.errors import QuaysideError
from quayside.executors import local_processes


def manifest_patch(old_json: str, new_json: str) -> tuple[int, int, str, bytes]:
    """``(head, tail, sha256 of new, middle)``: ``new`` is the first ``head`` bytes of ``old``,
    then ``middle``, then the last ``tail`` bytes of ``old``."""
    old, new = old_json.encode(), new_json.encode()
    limit = min(len(old), len(new))
    head = _common_length(old, new, limit, from_end=False)
    tail = _common_length(old, new, limit - head, from_end=True)
    middle = new[head : len(new) - tail]
    return head, tail, hashlib.sha256(new).hexdigest(), middle


def _common_length(a: bytes, b: bytes, limit: int, *, from_end: bool) -> int:
    """Length of the longest common prefix (or suffix) of ``a`` and ``b``, at most ``limit``:
    a binary search over slice comparisons (memcmp), not a Python loop over bytes."""

    def same(n: int) -> bool:
        return a[len(a) - n :] == b[len(b) - n :] if from_end else a[:n] == b[:n]

    low, high = 0, limit  # same(low) holds; find the largest n <= limit with same(n)
    while low < high:
        mid = (low + high + 1) // 2
        if same(mid):
            low = mid
        else:
            high = mid - 1
    return low


def build_tar(
    payload_dir: Path,
    paths: Sequence[str],
    manifest_json: str | None,
    *,
    manifest_name: str = scripts.MANIFEST_NEW,
    manifest_bytes: bytes | None = None,
) -> bytes:
    """An uncompressed tar of ``paths`` (relative to ``payload_dir``) with the manifest added
    last as ``<manifest>.new`` (or ``manifest_bytes`` as ``manifest_name``, the middle of a
    patched manifest; neither when both are None); owners are not recorded."""
    buf = io.BytesIO()
    end = _write_tar(buf, payload_dir, paths, manifest_json, manifest_name, manifest_bytes)
    # without tarfile's padding to a 10 KiB record: GNU tar reads a short last record
    return buf.getvalue()[: end + 2 * tarfile.BLOCKSIZE]


def build_tar_file(dest: Path, payload_dir: Path, paths: Sequence[str], manifest_json: str) -> Path:
    """:func:`build_tar` written to the file ``dest`` by GNU tar (for changes too large to
    hold in memory; about 0.1 s for 5,000 files where Python's tarfile takes 1 s here).

    Raises:
        QuaysideError: tar failed (its message says why).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    side = dest.with_name(dest.name + ".d")
    side.mkdir()
    try:
        listing = side / "files"
        listing.write_bytes(b"".join(p.encode() + b"\0" for p in paths))
        extra = side / "manifest"
        extra.mkdir()
        (extra / scripts.MANIFEST_NEW).write_text(manifest_json, encoding="utf-8")
        (extra / scripts.MANIFEST_NEW).chmod(0o644)
        argv = create_archive(dest, payload_dir, listing, extra, scripts.MANIFEST_NEW)
        done = local_processes.run(argv)
    finally:
        shutil.rmtree(side, ignore_errors=True)
    if done.returncode != 0:
        dest.unlink(missing_ok=True)
        raise QuaysideError(f"cannot pack the release into {dest}: {done.stderr.strip()[-300:]}")
    return dest


def _write_tar(
    out: Any,
    payload_dir: Path,
    paths: Sequence[str],
    manifest_json: str | None,
    manifest_name: str,
    manifest_bytes: bytes | None,
) -> int:
    """Write the tar; returns where its members end (before the end-of-archive blocks)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in paths:
            full = payload_dir / rel
            info = tar.gettarinfo(str(full), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(full, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
        if manifest_bytes is not None:
            data = manifest_bytes
        elif manifest_json is not None:
            data = manifest_json.encode()
        else:
            return tar.offset
        info = tarfile.TarInfo(manifest_name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
        return tar.offset
