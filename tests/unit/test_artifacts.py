"""The release artifact store, the same tests on both backends: a directory, and S3 on a real
moto server (testbed/s3.py)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from quayside.artifacts import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactRef,
    ArtifactStore,
    DirectoryStore,
    S3Store,
    UnsafeArchiveError,
    s3_client,
    validate_key,
)
from quayside.errors import InputError, NotFoundError
from testbed.s3 import S3Endpoint

MTIME = 1_700_000_000
WEIRD_NAME = "we ird 'single' \"double\"\nnewline.txt"


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """A fresh, empty store of each kind."""
    if request.param == "directory":
        return DirectoryStore(tmp_path / "store")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    client = s3_client(
        endpoint_url=endpoint.endpoint_url,
        region=endpoint.region,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
    )
    return S3Store(f"t-{uuid.uuid4().hex[:16]}", "quayside/artifacts", client, create_bucket=True)


def set_mtimes(root: Path) -> None:
    """Every entry under ``root`` (symlinks themselves, directories last) to MTIME."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(Path(dirpath, name), (MTIME, MTIME), follow_symlinks=False)


def make_tree(root: Path) -> Path:
    """A release-like tree: nested and empty dirs, symlinks (one leaving the tree, as shared
    paths do), an executable, a private file and dir, and an awkward file name."""
    (root / "app/src/lib").mkdir(parents=True)
    (root / "app/empty").mkdir()
    (root / "public/css").mkdir(parents=True)
    (root / "private").mkdir()
    (root / "app/src/lib/util.php").write_text("<?php return 1;\n")
    (root / "app/src/index.php").write_text("<?php echo 'hi';\n")
    (root / "public/css/site.css").write_text("body{}\n")
    (root / "bin").mkdir()
    (root / "bin/console").write_text("#!/bin/sh\necho ok\n")
    (root / "bin/console").chmod(0o755)
    (root / "private/key").write_text("k")
    (root / "private/key").chmod(0o600)
    (root / "private").chmod(0o700)
    (root / WEIRD_NAME).write_bytes(b"\x00\x01binary\xff")
    (root / "empty-file").write_bytes(b"")
    (root / "index.php").symlink_to("app/src/index.php")
    (root / "storage").symlink_to("../../shared/storage")  # leaves the tree: kept verbatim
    (root / "public/lib").symlink_to("../app/src/lib")
    for path in root.rglob("*"):
        if path.is_dir() and not path.is_symlink() and path.name != "private":
            path.chmod(0o755)
        elif path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o777 == 0o664:
            path.chmod(0o644)
    set_mtimes(root)
    return root


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Path → (kind, permission bits, mtime, content digest or link target), symlinks not
    followed."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", None, int(st.st_mtime), os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime), None)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), digest)
    return out


def corrupt(store: ArtifactStore, key: str) -> None:
    """Flip one byte in the middle of the stored object, leaving its recorded sha256."""
    if isinstance(store, DirectoryStore):
        path = Path(unquote(urlsplit(store.location(key)).path))
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return
    assert isinstance(store, S3Store)
    obj = store.client.get_object(Bucket=store.bucket, Key=store.object_key(key))
    data = bytearray(obj["Body"].read())
    data[len(data) // 2] ^= 0xFF
    store.client.put_object(
        Bucket=store.bucket, Key=store.object_key(key), Body=bytes(data), Metadata=obj["Metadata"]
    )


def leftovers(parent: Path) -> list[str]:
    """Hidden staging directories left next to a restore destination."""
    return [p.name for p in parent.iterdir() if p.name.endswith(".partial")]


# -- round trips ------------------------------------------------------------------------------


def test_round_trip_keeps_tree_modes_times_and_symlinks(
    store: ArtifactStore, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "src")
    ref = store.put_dir("web/prod/20240601-v1.2.3", source)

    assert isinstance(ref, ArtifactRef)
    assert ref.key == "web/prod/20240601-v1.2.3"
    assert ref.location == store.location(ref.key)
    assert len(ref.sha256) == 64 and ref.size > 0
    assert store.exists(ref.key)
    assert store.info(ref.key) == ref

    dest = tmp_path / "restore" / "release"
    store.get_dir(ref.key, dest)
    assert snapshot(dest) == snapshot(source)
    assert os.readlink(dest / "storage") == "../../shared/storage"
    assert (dest / WEIRD_NAME).read_bytes() == b"\x00\x01binary\xff"
    assert os.access(dest / "bin/console", os.X_OK)
    assert leftovers(dest.parent) == []


def test_restore_into_existing_empty_directory(store: ArtifactStore, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    store.put_dir("k", source)
    dest = tmp_path / "dest"
    dest.mkdir()
    store.get_dir("k", dest)
    assert snapshot(dest) == snapshot(source)


def test_five_thousand_small_files(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "many"
    for d in range(50):
        directory = source / f"d{d:02d}"
        directory.mkdir(parents=True)
        for f in range(100):
            (directory / f"f{f:03d}.txt").write_text(f"{d}/{f}\n")
    set_mtimes(source)
    ref = store.put_dir("many/r1", source)
    dest = tmp_path / "out"
    store.get_dir(ref.key, dest)
    restored = snapshot(dest)
    assert len([v for v in restored.values() if v[0] == "file"]) == 5000
    assert restored == snapshot(source)


def test_same_tree_gives_the_same_bytes(store: ArtifactStore, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    first = store.put_dir("a/one", source)
    second = store.put_dir("a/two", source)
    assert (first.sha256, first.size) == (second.sha256, second.size)
    # A copy with the same content and times, made in another order, packs identically.
    copy = tmp_path / "copy"
    store.get_dir("a/one", copy)
    (copy / "private").chmod(0o700)
    assert store.put_dir("a/three", copy).sha256 == first.sha256


def test_put_replaces_and_delete_removes(store: ArtifactStore, tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "v").write_text("1")
    two = tmp_path / "two"
    two.mkdir()
    (two / "v").write_text("2")
    store.put_dir("rel", one)
    store.put_dir("rel", two)
    store.get_dir("rel", tmp_path / "out")
    assert (tmp_path / "out/v").read_text() == "2"

    store.delete("rel")
    assert not store.exists("rel")
    store.delete("rel")  # again: no error
    with pytest.raises(ArtifactNotFoundError) as info:
        store.get_dir("rel", tmp_path / "again")
    assert isinstance(info.value, NotFoundError)
    assert store.location("rel") in str(info.value)
    assert not (tmp_path / "again").exists()
    with pytest.raises(ArtifactNotFoundError):
        store.info("rel")


def test_locations(store: ArtifactStore, tmp_path: Path) -> None:
    if isinstance(store, S3Store):
        assert store.location("web/r1") == f"s3://{store.bucket}/quayside/artifacts/web/r1"
    else:
        assert store.location("web/r1") == (tmp_path / "store/web/r1.artifact").as_uri()


# -- integrity and safety ---------------------------------------------------------------------


def test_corrupted_object_is_detected_and_nothing_is_written(
    store: ArtifactStore, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "src")
    store.put_dir("web/r1", source)
    corrupt(store, "web/r1")
    dest = tmp_path / "restore" / "release"
    with pytest.raises(ArtifactIntegrityError) as info:
        store.get_dir("web/r1", dest)
    assert "sha256" in str(info.value)
    assert store.location("web/r1") in str(info.value)
    assert info.value.hint
    assert not dest.exists()
    assert leftovers(dest.parent) == []


def test_corrupted_object_removes_an_empty_destination(
    store: ArtifactStore, tmp_path: Path
) -> None:
    store.put_dir("web/r1", make_tree(tmp_path / "src"))
    corrupt(store, "web/r1")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtifactIntegrityError):
        store.get_dir("web/r1", dest)
    assert not dest.exists()


def evil_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = "") -> Any:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


EVIL = {
    "dotdot": [member("ok.txt"), member("../escaped.txt")],
    "nested-dotdot": [member("a", tarfile.DIRTYPE), member("a/../../escaped.txt")],
    "absolute": [member("/tmp/quayside-escaped-abs.txt")],
    "through-symlink": [
        member("link", tarfile.SYMTYPE, link="../"),
        member("link/escaped.txt"),
    ],
    "symlink-replaced-then-written": [
        member("f"),
        member("f", tarfile.SYMTYPE, link="../escaped.txt"),
        member("f", data=b"overwrite"),
    ],
    "absolute-symlink": [member("etc", tarfile.SYMTYPE, link="/etc")],
    "hardlink-outside": [member("passwd", tarfile.LNKTYPE, link="/etc/passwd")],
    "hardlink-dotdot": [member("h", tarfile.LNKTYPE, link="../escaped.txt")],
    "device": [member("null", tarfile.CHRTYPE)],
    "fifo": [member("pipe", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_unsafe_archive_is_refused(store: ArtifactStore, tmp_path: Path, case: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "escaped.txt").write_text("original")
    archive = evil_tar(tmp_path / f"{case}.tar", EVIL[case])
    store.put_archive(f"evil/{case}", archive)
    dest = work / "dest"
    with pytest.raises(UnsafeArchiveError) as info:
        store.get_dir(f"evil/{case}", dest)
    assert store.location(f"evil/{case}") in str(info.value)
    assert not dest.exists()
    assert leftovers(work) == []
    assert sorted(p.name for p in work.iterdir()) == []
    assert (tmp_path / "escaped.txt").read_text() == "original"
    assert not Path("/tmp/quayside-escaped-abs.txt").exists()


def test_foreign_archive_with_dot_entries_restores(store: ArtifactStore, tmp_path: Path) -> None:
    """An archive made like `tar -C dir -c .` (names starting with ./) is accepted."""
    archive = evil_tar(
        tmp_path / "dot.tar",
        [
            member(".", tarfile.DIRTYPE),
            member("./a", tarfile.DIRTYPE),
            member("./a/f", data=b"hello"),
            member("./a/link", tarfile.SYMTYPE, link="f"),
            member("./a/hard", tarfile.LNKTYPE, link="./a/f"),
        ],
    )
    store.put_archive("foreign", archive)
    store.get_dir("foreign", tmp_path / "out")
    assert (tmp_path / "out/a/f").read_bytes() == b"hello"
    assert os.readlink(tmp_path / "out/a/link") == "f"
    assert (tmp_path / "out/a/hard").read_bytes() == b"hello"


def test_setuid_and_group_write_bits_are_dropped(store: ArtifactStore, tmp_path: Path) -> None:
    info, data = member("tool")
    info.mode = 0o6777
    store.put_archive("bits", evil_tar(tmp_path / "bits.tar", [(info, data)]))
    store.get_dir("bits", tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out/tool").stat().st_mode) == 0o755


# -- bad input --------------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "/abs",
    "..",
    "a/../b",
    "a..b",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "a b",
    "a;rm -rf",
    "a\nb",
    "ключ",
    "a\\b",
    "$(id)",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(store: ArtifactStore, tmp_path: Path, key: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    calls: list[Callable[[], object]] = [
        lambda: store.put_dir(key, source),
        lambda: store.get_dir(key, tmp_path / "out"),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.location(key),
        lambda: store.info(key),
    ]
    for call in calls:
        with pytest.raises(InputError) as info:
            call()
        assert "artifact key" in str(info.value)
        assert info.value.hint
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["web", "web/prod/r1", "a.b_c-d/E.1", "v1.2.3", "x/.hidden"])
def test_good_keys(key: str) -> None:
    assert validate_key(key) == key


def test_destination_must_be_absent_or_empty(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_dir("k", make_tree(tmp_path / "src"))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        store.get_dir("k", dest)
    assert (dest / "keep").read_text() == "mine"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError):
        store.get_dir("k", a_file)


def test_source_must_be_a_directory(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        store.put_dir("k", tmp_path / "missing")
    assert not store.exists("k")


def test_absolute_symlink_in_source_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "etc").symlink_to("/etc")
    with pytest.raises(InputError, match="absolute path"):
        store.put_dir("k", source)
    assert not store.exists("k")


def test_fifo_in_source_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    os.mkfifo(source / "pipe")
    with pytest.raises(InputError, match="not a regular file"):
        store.put_dir("k", source)
    assert not store.exists("k")


# -- format and resources (directory backend: the object is a plain file) ---------------------


def test_archive_format_is_deterministic_tar(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store", compress=False)
    source = make_tree(tmp_path / "src")
    ref = store.put_dir("plain", source)
    path = Path(unquote(urlsplit(ref.location).path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256
    assert path.stat().st_size == ref.size
    with tarfile.open(path, "r:") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert not any(n.startswith(("/", "./")) or ".." in n.split("/") for n in names)
    assert all((m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "") for m in members)
    assert all(m.mtime == MTIME for m in members)
    # Depth first, siblings sorted, each directory before its contents.
    assert names.index("app") < names.index("app/empty") < names.index("app/src")
    assert names.index("app/src") < names.index("app/src/index.php") < names.index("bin")
    assert {m.name: m.linkname for m in members if m.issym()}["storage"] == ("../../shared/storage")
    assert DirectoryStore(tmp_path / "gz").put_dir("gz", source).size < ref.size


def test_directory_store_default_root_is_quayside_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUAYSIDE_HOME", str(tmp_path / "home"))
    store = DirectoryStore()
    assert store.root == (tmp_path / "home/artifacts").resolve()


def test_directory_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    store.put_dir("web/r1", make_tree(tmp_path / "src"))
    names = sorted(p.name for p in (tmp_path / "store/web").iterdir())
    assert names == ["r1.artifact", "r1.artifact.json"]
    store.delete("web/r1")
    assert not (tmp_path / "store/web").exists()  # emptied directories go too


def test_large_payload_streams_with_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.mkdir()
    with open(source / "blob.bin", "wb") as f:
        for _ in range(24):
            f.write(os.urandom(1 << 20))
    store = DirectoryStore(tmp_path / "store")
    tracemalloc.start()
    try:
        ref = store.put_dir("big", source)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.get_dir("big", tmp_path / "out")
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size > 24 << 20  # incompressible
    assert put_peak < 8 << 20, put_peak
    assert get_peak < 8 << 20, get_peak
    assert (tmp_path / "out/blob.bin").stat().st_size == 24 << 20


def test_errors_are_quayside_errors(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    with pytest.raises(ArtifactError) as info:
        store.get_dir("nothing/here", tmp_path / "out")
    assert info.value.key == "nothing/here"
    assert info.value.location == store.location("nothing/here")
