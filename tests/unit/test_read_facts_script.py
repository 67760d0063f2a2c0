"""The host's facts program (quayside/commands/read_facts.sh) run directly with ``sh``, as a user
could paste it, and as the shared definitions the stage and rollback switch are sent with."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from quayside.commands import release as rc
from quayside.deploy import scripts
from quayside.manifest import MANIFEST_FILENAME
from quayside.release_id import is_release_id
from testbed.require import need_binary

SCRIPT = Path(rc.__file__).with_name("read_facts.sh")
R1 = "20240501T120000Z-aaaaaaaaaaaa"
R2 = "20240502T120000Z-bbbbbbbbbbbb"


def deploy_root(tmp_path: Path) -> tuple[Path, bytes]:
    """A deploy root (hostile name) serving R1 with a manifest, R2 beside it, and a symlink and
    a file in releases/ that are no releases; returns it and R1's manifest."""
    root = tmp_path / "deploy root $(touch PWNED) 'q'"
    manifest = b'{"entries": {"index.html": ["file", 420, 2, "00"]}}'
    for rid in (R1, R2):
        (root / "releases" / rid).mkdir(parents=True)
    (root / "releases" / R1 / MANIFEST_FILENAME).write_bytes(manifest)
    (root / "releases" / "notes.txt").write_text("not a release")
    os.symlink(R2, root / "releases" / "latest")
    os.symlink(f"releases/{R1}", root / "current")
    return root, manifest


def run_file(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, cwd=cwd)


def test_the_file_starts_with_a_version_line_and_names_the_manifest_as_quayside_does() -> None:
    lines = SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/bin/sh" and lines[1].startswith("# quayside read_facts script, version ")
    assert f"M={MANIFEST_FILENAME}" in lines
    sent = rc.FACTS_PRELUDE.splitlines()
    assert sent[:2] == lines[:2] and [line for line in lines if line in sent] == sent


def test_run_directly_it_prints_what_read_facts_prints(tmp_path: Path) -> None:
    root, manifest = deploy_root(tmp_path)
    direct = run_file(str(root), cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout == (
        f"current:releases/{R1}\nrelease:{R1}\nrelease:{R2}\nmanifest:".encode() + manifest + b"\n"
    )
    assert direct.stdout == subprocess.run(rc.read_facts(str(root)), capture_output=True).stdout
    facts = rc.parse_facts(direct.stdout.decode(), str(root))
    assert (facts.current, facts.releases) == (R1, [R1, R2])
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_known_manifest_is_not_sent_again(tmp_path: Path) -> None:
    root, manifest = deploy_root(tmp_path)
    known = hashlib.sha256(manifest).hexdigest()
    same = run_file(str(root), known)
    assert same.returncode == 0 and same.stdout.endswith(f"manifest-same:{known}\n".encode())
    assert (
        same.stdout == subprocess.run(rc.read_facts(str(root), known), capture_output=True).stdout
    )
    other = run_file(str(root), "0" * 64)
    assert other.stdout.endswith(b"manifest:" + manifest + b"\n")


def test_a_host_without_releases_has_empty_facts(tmp_path: Path) -> None:
    result = run_file(str(tmp_path / "nothing here"))
    assert (result.returncode, result.stdout) == (0, b"current:\n")
    os.symlink("/etc", tmp_path / "current")  # not a release of this layout: shown verbatim
    result = run_file(str(tmp_path))
    assert (result.returncode, result.stdout) == (0, b"current:/etc\n")


def test_without_a_deploy_root_it_fails_and_says_so() -> None:
    result = run_file()
    assert result.returncode != 0 and b"parameter not set" in result.stderr


@pytest.mark.parametrize(
    "name",
    [
        R1,  # the longest id (12 hex digits)
        "20240501T120000Z-0123456",  # the shortest (7)
        "20240501T120000Z-012345",
        "20240501T120000Z-0123456789abc",
        "20240501T120000Z-ABCDEF123456",
        "20240501T120000Z-aaaa aaaaaaa",
        "2024050xT120000Z-aaaaaaaaaaaa",
        "notes",
        "",
        "-rf",
    ],
)
def test_is_release_id_on_the_host_agrees_with_quayside(name: str) -> None:
    """The host's check is the shape only (quayside's also parses the date): the same answer
    for these names."""
    result = subprocess.run(
        ["sh", "-c", rc.FACTS_PRELUDE + 'is_release_id "$1"', rc.SCRIPT_NAME, name],
        capture_output=True,
    )
    assert result.stdout == b"" and result.stderr == b""
    assert (result.returncode == 0) == is_release_id(name), name


def test_sent_in_front_of_another_program_it_only_defines(tmp_path: Path) -> None:
    root, _ = deploy_root(tmp_path)
    result = subprocess.run(
        ["sh", "-c", rc.FACTS_PRELUDE + "echo after", rc.SCRIPT_NAME, str(root)],
        capture_output=True,
    )
    assert (result.returncode, result.stdout) == (0, b"after\n")


def test_the_host_programs_carry_one_definition_each() -> None:
    deploy_dir = Path(scripts.__file__).parent
    for definition in ("facts() {", "is_release_id() {", "M="):
        assert SCRIPT.read_text().count(f"\n{definition}") == 1, definition
        for name in ("stage.sh", "rollback_switch.sh"):
            assert f"\n{definition}" not in (deploy_dir / name).read_text(), (name, definition)
    for sent in (scripts.STAGE_SCRIPT, scripts.ROLLBACK_SWITCH_SCRIPT, rc.FACTS_SCRIPT):
        assert sent.count("\nis_release_id() {") == 1 and sent.count("\nfacts() {") == 1


def test_shellcheck_finds_nothing() -> None:
    shellcheck = need_binary("shellcheck", "shellcheck")  # fails under CI when missing
    result = subprocess.run([shellcheck, "--shell=sh", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    listed = subprocess.run(
        [str(Path(__file__).parents[2] / "infra/scripts/shell-programs.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "quayside/commands/read_facts.sh" in listed  # make lint checks it too
