"""Payload artifacts kept as deltas (quayside.artifacts.delta), on the directory store and on
a real S3 endpoint (moto server mode)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from quayside.artifacts import ArtifactStore, DirectoryStore
from quayside.artifacts.delta import (
    DELTA_FILENAME,
    MAX_DEPTH,
    StoredPayload,
    delta_base,
    get_payload,
    put_payload,
    recall,
    remember,
)
from quayside.artifacts.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    UnsafeArchiveError,
)
from quayside.manifest import MANIFEST_FILENAME, Manifest, build_manifest
from tests.unit.test_artifacts import store  # noqa: F401 - the parametrised store fixture


def payload(root: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Manifest:
    """A payload directory with ``files`` and ``links`` and its manifest file; its manifest."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for rel, target in (links or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / rel)
    manifest = build_manifest(root)
    (root / MANIFEST_FILENAME).write_text(manifest.to_json())
    return manifest


BIG = os.urandom(64 * 1024)


def v1(tmp_path: Path) -> tuple[Path, Manifest]:
    root = tmp_path / "v1"
    manifest = payload(
        root,
        {
            "app/big.bin": BIG,
            "app/keep.txt": b"keep\n",
            "app/change.txt": b"old\n",
            "app/gone.txt": b"gone\n",
            "app/olddir/inner.txt": b"inner\n",
            "becomes-dir": b"a file first\n",
        },
        {"logs": "../../shared/logs", "relink": "app/keep.txt"},
    )
    return root, manifest


def v2(tmp_path: Path) -> tuple[Path, Manifest]:
    root = tmp_path / "v2"
    manifest = payload(
        root,
        {
            "app/big.bin": BIG,
            "app/keep.txt": b"keep\n",
            "app/change.txt": b"new content\n",
            "app/added/deep/new.txt": b"added\n",
            "becomes-dir/now.txt": b"a directory now\n",
        },
        {"logs": "../../shared/logs", "relink": "app/change.txt"},
    )
    (root / "app" / "keep.txt").chmod(0o600)  # a mode change alone is a change
    manifest = build_manifest(root)
    (root / MANIFEST_FILENAME).write_text(manifest.to_json())
    return root, manifest


def test_a_delta_holds_only_the_changes_and_restores_the_exact_payload(
    store: ArtifactStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    one, m1 = v1(tmp_path)
    two, m2 = v2(tmp_path)
    _, first = put_payload(store, "web/prod/r1", one, m1, None)
    assert first == StoredPayload("web/prod/r1", 0, m1)
    base = delta_base(store, m2, first)
    assert base == first
    ref, second = put_payload(store, "web/prod/r2", two, m2, base)
    assert second.depth == 1
    whole = store.put_dir("web/prod/r2-whole", two)
    assert ref.size < whole.size / 4  # BIG is not in the delta

    # the raw artifact is the delta: changed and added paths, the manifest, the description
    raw = tmp_path / "raw"
    store.get_dir("web/prod/r2", raw)
    description = json.loads((raw / DELTA_FILENAME).read_text())
    assert description["base"] == "web/prod/r1"
    assert sorted(description["removed"]) == ["app/gone.txt", "app/olddir", "app/olddir/inner.txt"]
    assert not (raw / "app" / "big.bin").exists()
    assert (raw / "app" / "change.txt").read_bytes() == b"new content\n"

    out = tmp_path / "out"
    assert get_payload(store, "web/prod/r2", out) == m2
    assert build_manifest(out) == m2
    assert not (out / DELTA_FILENAME).exists()
    assert os.readlink(out / "relink") == "app/change.txt"
    assert (out / "becomes-dir" / "now.txt").read_bytes() == b"a directory now\n"
    assert not list(tmp_path.glob(".out.*"))  # no overlay left behind

    # and the base still restores as itself
    assert get_payload(store, "web/prod/r1", tmp_path / "again") == m1


def test_chains_restore_through_every_base(store: ArtifactStore, tmp_path: Path) -> None:  # noqa: F811
    files = {f"f{i}.txt": f"{i}\n".encode() * 50 for i in range(10)}
    m = payload(tmp_path / "p", files)
    _, stored = put_payload(store, "app/env/r0", tmp_path / "p", m, None)
    for n in range(1, 4):
        files[f"f{n}.txt"] = f"changed {n}\n".encode()
        m = payload(tmp_path / "p", files)
        base = delta_base(store, m, stored)
        assert base is not None
        _, stored = put_payload(store, f"app/env/r{n}", tmp_path / "p", m, base)
    assert stored.depth == 3
    assert get_payload(store, "app/env/r3", tmp_path / "out") == m


def test_no_delta_when_too_deep_too_big_or_the_base_is_gone(tmp_path: Path) -> None:
    local = DirectoryStore(tmp_path / "local")
    one, m1 = v1(tmp_path)
    two, m2 = v2(tmp_path)
    _, first = put_payload(local, "web/prod/r1", one, m1, None)
    assert delta_base(local, m2, StoredPayload(first.key, MAX_DEPTH, m1)) is None
    everything_new = payload(tmp_path / "v3", {"app/big.bin": os.urandom(len(BIG))})
    assert delta_base(local, everything_new, first) is None
    assert delta_base(local, m2, None) is None
    local.delete("web/prod/r1")
    assert delta_base(local, m2, first) is None


def test_a_missing_base_fails_the_restore_and_leaves_nothing(tmp_path: Path) -> None:
    local = DirectoryStore(tmp_path / "local")
    one, m1 = v1(tmp_path)
    two, m2 = v2(tmp_path)
    _, first = put_payload(local, "web/prod/r1", one, m1, None)
    put_payload(local, "web/prod/r2", two, m2, first)
    local.delete("web/prod/r1")
    out = tmp_path / "out"
    with pytest.raises(ArtifactNotFoundError):
        get_payload(local, "web/prod/r2", out)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))


def test_a_delta_made_against_the_wrong_base_is_caught_by_the_manifest(tmp_path: Path) -> None:
    local = DirectoryStore(tmp_path / "local")
    one, m1 = v1(tmp_path)
    two, m2 = v2(tmp_path)
    local.put_dir("web/prod/r1", one)
    # claims the base already holds a file it does not: the delta leaves it out
    lie = Manifest({**dict(m1), "app/added/deep/new.txt": m2["app/added/deep/new.txt"]})
    put_payload(local, "web/prod/r2", two, m2, StoredPayload("web/prod/r1", 0, lie))
    out = tmp_path / "out"
    with pytest.raises(ArtifactIntegrityError, match="does not match its manifest"):
        get_payload(local, "web/prod/r2", out)
    assert not out.exists()


def _hand_made_delta(tmp_path: Path, local: DirectoryStore, description: object) -> None:
    root = tmp_path / "delta"
    root.mkdir()
    (root / MANIFEST_FILENAME).write_text(Manifest({}).to_json())
    (root / DELTA_FILENAME).write_text(json.dumps(description))
    local.put_dir("web/prod/bad", root)


@pytest.mark.parametrize(
    "description",
    [
        {"format": 1, "base": "web/prod/r1", "depth": 1, "removed": ["../../etc/passwd"]},
        {"format": 1, "base": "web/prod/r1", "depth": 1, "removed": ["/etc/passwd"]},
        {"format": 1, "base": "../r1", "depth": 1, "removed": []},
        {"format": 99, "base": "web/prod/r1", "depth": 1, "removed": []},
        {"format": 1, "base": "web/prod/r1", "depth": 1, "removed": "app"},
        ["not", "an", "object"],
    ],
)
def test_a_malformed_delta_description_is_refused(tmp_path: Path, description: object) -> None:
    local = DirectoryStore(tmp_path / "local")
    one, m1 = v1(tmp_path)
    local.put_dir("web/prod/r1", one)
    _hand_made_delta(tmp_path, local, description)
    out = tmp_path / "out"
    with pytest.raises(ArtifactIntegrityError, match="malformed delta description"):
        get_payload(local, "web/prod/bad", out)
    assert not out.exists()


def test_a_delta_never_removes_through_a_symlink(tmp_path: Path) -> None:
    local = DirectoryStore(tmp_path / "local")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    base = tmp_path / "base"
    payload(base, {"a.txt": b"a\n"}, {"link": "../outside"})  # from out/link: outside
    local.put_dir("web/prod/r1", base)
    _hand_made_delta(
        tmp_path,
        local,
        {"format": 1, "base": "web/prod/r1", "depth": 1, "removed": ["link/precious.txt"]},
    )
    with pytest.raises(UnsafeArchiveError, match="through a symlink"):
        get_payload(local, "web/prod/bad", tmp_path / "out")
    assert (outside / "precious.txt").read_text() == "keep me\n"


def test_remember_and_recall(tmp_path: Path) -> None:
    _, m1 = v1(tmp_path)
    index = tmp_path / "payloads" / "web" / "prod.json"
    assert recall(index) is None
    remember(index, StoredPayload("web/prod/r1", 2, m1))
    assert recall(index) == StoredPayload("web/prod/r1", 2, m1)
    got = recall(index, known=m1)
    assert got is not None and got.manifest is m1  # the caller's copy, not parsed again
    index.write_text('{"key": "../x", "depth": 0, "manifest": "{}"}')
    assert recall(index) is None
    index.write_text("not json")
    assert recall(index) is None
