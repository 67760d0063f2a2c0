"""Content manifests: building from a real directory, serialisation, digests, diffs."""

from __future__ import annotations

import hashlib
import os
import posixpath
import random
import time
from pathlib import Path

import pytest

from quayside.errors import InputError
from quayside.manifest import (
    MANIFEST_FILENAME,
    Entry,
    Manifest,
    build_manifest,
    check_manifest_path,
    diff,
    human_bytes,
    removal_roots,
)


def make_tree(root: Path) -> None:
    (root / "app" / "lib").mkdir(parents=True)
    (root / "app" / "index.php").write_text("<?php echo 1;")
    (root / "app" / "lib" / "big.bin").write_bytes(b"x" * (3 << 20))  # > one hash chunk
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "empty").mkdir()
    (root / "we ird\n'$(x)'.txt").write_text("odd")
    os.symlink("/etc/app.conf", root / "config")
    os.symlink("app/missing", root / "dangling")
    (root / MANIFEST_FILENAME).write_text("{}")


def test_build_manifest_records_kinds_sizes_hashes_modes(tmp_path: Path) -> None:
    make_tree(tmp_path)
    m = build_manifest(tmp_path)
    assert list(m) == sorted(m)
    assert list(m) == [
        "app",
        "app/index.php",
        "app/lib",
        "app/lib/big.bin",
        "config",
        "dangling",
        "empty",
        "run.sh",
        "we ird\n'$(x)'.txt",
    ]
    big = m["app/lib/big.bin"]
    assert (big.kind, big.size) == ("file", 3 << 20)
    assert big.sha256 == hashlib.sha256(b"x" * (3 << 20)).hexdigest()
    assert big.mode == (tmp_path / "app/lib/big.bin").stat().st_mode & 0o7777
    assert m["run.sh"].mode & 0o111
    assert m["config"] == Entry("symlink", m["config"].mode, target="/etc/app.conf")
    assert m["dangling"].target == "app/missing"
    assert m["empty"].kind == "dir" and m["empty"].sha256 is None
    assert MANIFEST_FILENAME not in m
    assert m.total_bytes == (3 << 20) + len("<?php echo 1;") + len("#!/bin/sh\n") + 3
    assert m.files() == ["app/index.php", "app/lib/big.bin", "run.sh", "we ird\n'$(x)'.txt"]


def test_build_manifest_does_not_follow_symlinked_dirs(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    m = build_manifest(root)
    assert list(m) == ["link"] and m["link"].kind == "symlink"


def test_build_manifest_refuses_special_files_and_non_dirs(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="not a file, symlink or directory"):
        build_manifest(tmp_path)
    with pytest.raises(InputError):
        build_manifest(tmp_path / "fifo")
    with pytest.raises(InputError):
        build_manifest(tmp_path / "missing")


def test_json_round_trip_and_digest_are_stable(tmp_path: Path) -> None:
    make_tree(tmp_path)
    m = build_manifest(tmp_path)
    text = m.to_json()
    assert "\n" not in text  # one line, safe to print in a line-based protocol
    back = Manifest.from_json(text)
    assert back == m and back.to_json() == text and back.digest() == m.digest()
    # the same content elsewhere, with other mtimes, has the same digest
    other = tmp_path.parent / (tmp_path.name + "-copy")
    make_tree(other)
    os.utime(other / "run.sh", (time.time() - 3600, time.time() - 3600))
    assert build_manifest(other).digest() == m.digest()
    # content, mode, or link changes change the digest
    (other / "run.sh").chmod(0o700)
    assert build_manifest(other).digest() != m.digest()


def test_shared_paths_are_part_of_the_digest() -> None:
    m = Manifest({"a": Entry("file", 0o644, 1, "0" * 64)})
    s = m.with_shared(["logs", "storage/uploads"])
    assert s.shared == ("logs", "storage/uploads") and dict(s) == dict(m)
    assert s.digest() != m.digest()
    assert Manifest.from_json(s.to_json()) == s
    assert s != m
    with pytest.raises(InputError):
        m.with_shared(["../etc"])


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"version": 2, "entries": {}}',
        '{"version": 1}',
        '{"version": 1, "entries": {"../x": {"kind": "dir", "mode": 493}}}',
        '{"version": 1, "entries": {"/abs": {"kind": "dir", "mode": 493}}}',
        '{"version": 1, "entries": {"a": {"kind": "fifo", "mode": 420}}}',
        '{"version": 1, "entries": {"a": {"kind": "file", "mode": 420}}}',
        '{"version": 1, "entries": {"a": {"kind": "file", "mode": 420, "size": 1, "sha256": "x"}}}',
        '{"version": 1, "entries": {}, "shared": "logs"}',
    ],
)
def test_from_json_refuses_malformed_manifests(text: str) -> None:
    with pytest.raises(InputError):
        Manifest.from_json(text)


def test_diff_added_changed_removed_with_byte_totals() -> None:
    f = lambda size, h: Entry("file", 0o644, size, h * 64)  # noqa: E731
    old = Manifest(
        {
            "a": f(10, "a"),
            "b": f(20, "b"),
            "d": Entry("dir", 0o755),
            "d/x": f(5, "c"),
            "gone": f(7, "d"),
            "link": Entry("symlink", 0o777, target="a"),
        }
    )
    new = Manifest(
        {
            "a": f(10, "a"),
            "b": f(25, "e"),
            "d": Entry("dir", 0o700),
            "d/x": f(5, "c"),
            "link": Entry("symlink", 0o777, target="b"),
            "new": f(100, "f"),
        }
    )
    d = diff(old, new)
    assert d.added == ("new",)
    assert d.changed == ("b", "d", "link")
    assert d.removed == ("gone",)
    assert d.counts == (1, 3, 1)
    assert d.bytes_to_send == 125 and d.bytes_removed == 7
    assert d.summary() == "1 added, 3 changed, 1 removed; 125 B to send, 7 B removed"
    assert d.lines() == ["+ new", "~ b", "~ d", "~ link", "- gone"]
    assert d.lines(limit=2) == ["+ new", "~ b", "… 3 more"]
    assert diff(new, new).empty and diff(new, new).summary() == "no change"
    first = diff(None, new)
    assert first.added == tuple(new) and first.bytes_to_send == 140


def test_removal_roots() -> None:
    assert removal_roots(["a/b", "a", "a/b/c", "ab", "c/d", "c/e/f"]) == ["a", "ab", "c/d", "c/e/f"]
    assert removal_roots([]) == []


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(50 * 1024 * 1024) == "50.0 MiB"


def test_five_thousand_files_is_fast(tmp_path: Path) -> None:
    # no timing assertion (see DESIGN.md): this shows it works at the size of a real app and
    # prints the figure for whoever reads the log
    for i in range(50):
        d = tmp_path / f"dir{i:02d}"
        d.mkdir()
        for j in range(100):
            (d / f"f{j:03d}.php").write_bytes(os.urandom(64) * 16)
    start = time.perf_counter()
    m = build_manifest(tmp_path)
    elapsed = time.perf_counter() - start
    assert len(m.files()) == 5000
    again = Manifest.from_json(m.to_json())
    assert diff(m, again).empty
    print(f"build_manifest: 5000 files in {elapsed:.3f}s")


def _normal_relative(path: str) -> bool:
    """The definition: what posixpath.normpath leaves alone, relative, no ``..``, no NUL."""
    return (
        path not in ("", ".")
        and not path.startswith("/")
        and "\x00" not in path
        and posixpath.normpath(path) == path
        and ".." not in path.split("/")
    )


def test_manifest_paths_are_checked_like_posixpath_normalisation() -> None:
    rng = random.Random(11)
    alphabet = ["a", "b", ".", "..", "/", "\x00", "é", " ", "\n", "..."]
    samples = [
        *("a", "a/b", ".", "..", "a/..", "../a", "a/./b", "a//b", "a/", "/a", "", ".a"),
        *("a..", "...", "a/.../b", "a/.b/c", "a\x00b", "a/b/.", "./a"),
    ]
    for _ in range(3000):
        samples.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))))
    for path in samples:
        try:
            check_manifest_path(path)
            accepted = True
        except InputError:
            accepted = False
        assert accepted == _normal_relative(path), repr(path)
