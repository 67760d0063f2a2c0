"""Scratch left by crashed runs is swept (quayside.scratch) where the same scratch is made."""

from __future__ import annotations

import os
import time
from pathlib import Path

from quayside.artifacts import DirectoryStore
from quayside.scratch import STALE_AFTER_S, TEMP_STALE_AFTER_S, sweep_stale


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def stored_once(tmp_path: Path) -> tuple[DirectoryStore, Path]:
    """A directory store holding ``web/prod/r1``, a payload of one file, and that payload."""
    store = DirectoryStore(tmp_path / "store")
    source = tmp_path / "payload"
    source.mkdir()
    (source / "a.txt").write_text("a")
    store.put_dir("web/prod/r1", source)
    return store, source


def test_only_old_matching_entries_go(tmp_path: Path) -> None:
    old_dir = tmp_path / "web-prod-r1-1"
    (old_dir / "deep").mkdir(parents=True)
    (old_dir / "deep" / "file").write_text("x")
    age(old_dir, STALE_AFTER_S + 60)
    new_dir = tmp_path / "web-prod-r2-2"
    new_dir.mkdir()
    old_file = tmp_path / ".x.tmp"
    old_file.write_text("x")
    age(old_file, STALE_AFTER_S + 60)
    outside = tmp_path.parent / f"{tmp_path.name}-target"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    link = tmp_path / "old-link"
    link.symlink_to(outside)
    age(link, STALE_AFTER_S + 60)

    removed = sweep_stale(tmp_path)
    assert sorted(p.name for p in removed) == [".x.tmp", "old-link", "web-prod-r1-1"]
    assert new_dir.is_dir()
    assert (outside / "keep").read_text() == "keep"  # a link goes, never what it points at
    assert sweep_stale(tmp_path / "missing") == []


def test_a_pattern_limits_the_sweep(tmp_path: Path) -> None:
    for name in (".a.tmp", "a.artifact"):
        (tmp_path / name).write_text("x")
        age(tmp_path / name, TEMP_STALE_AFTER_S + 60)
    assert [p.name for p in sweep_stale(tmp_path, pattern=".*.tmp", older_than_s=60)] == [".a.tmp"]
    assert (tmp_path / "a.artifact").exists()


def test_the_directory_store_sweeps_temporary_files_of_crashed_writers(tmp_path: Path) -> None:
    store, source = stored_once(tmp_path)
    crashed = tmp_path / "store" / "web" / "prod" / ".r0.artifact.0123456789ab.tmp"
    crashed.write_bytes(b"half")
    age(crashed, TEMP_STALE_AFTER_S + 60)
    fresh = tmp_path / "store" / "web" / "prod" / ".r9.artifact.0123456789ab.tmp"
    fresh.write_bytes(b"another writer, now")
    store.put_dir("web/prod/r2", source)
    assert not crashed.exists()
    assert fresh.exists()
    assert store.exists("web/prod/r1") and store.exists("web/prod/r2")


def test_a_restore_sweeps_staging_of_crashed_restores(tmp_path: Path) -> None:
    store, source = stored_once(tmp_path)
    crashed = tmp_path / ".out.0123456789ab.partial"
    crashed.mkdir()
    age(crashed, TEMP_STALE_AFTER_S + 60)
    other = tmp_path / ".other.0123456789ab.partial"
    other.mkdir()
    age(other, TEMP_STALE_AFTER_S + 60)
    store.get_dir("web/prod/r1", tmp_path / "out")
    assert not crashed.exists()
    assert other.exists()  # another destination's staging is not this restore's business
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
