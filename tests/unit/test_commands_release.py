"""Release layout, release id and rsync argv builders: exact argv, and the sh -c scripts and
rsync run for real on a temp dir with hostile file names."""

from __future__ import annotations

import os
import shlex
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from quayside.commands import release as rc
from quayside.commands.rsync import (
    files_from_bytes,
    parse_rsync_stats,
    remote_dest,
    rsync_push,
)
from quayside.errors import InputError
from quayside.manifest import MANIFEST_FILENAME, build_manifest
from quayside.release_id import (
    is_release_id,
    new_release_id,
    validate_release_id,
)
from testbed.require import need_binary

R1 = "20240501T120000Z-aaaaaaaaaaaa"
R2 = "20240502T120000Z-bbbbbbbbbbbb"
R3 = "20240503T120000Z-cccccccccccc"
ROOT = "/srv/www/app"
HOSTILE = [
    "with space.txt",
    'it\'s "quoted".txt',
    "$(touch PWNED)",
    "`touch PWNED2`",
    "new\nline.txt",
    "-rf",
    "semi;colon|pipe&amp*glob?.txt",
    "ünï cødé.txt",
]


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run an argv as the SSH executor would: shlex.join at the boundary, through a shell."""
    line = shlex.join(argv)
    return subprocess.run(  # noqa: S603 - the point: a shell sees only the quoted line
        ["sh", "-c", line], capture_output=True, text=True, **kwargs
    )


# -- release ids --------------------------------------------------------------------------


def test_release_ids_sort_in_time_order() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    t = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    rid = new_release_id(sha, t)
    assert rid == "20240501T120001Z-0123456789ab"
    later = new_release_id(sha, t + timedelta(seconds=1))
    assert sorted([later, rid]) == [rid, later]
    cet = timezone(timedelta(hours=2))
    assert new_release_id(sha, datetime(2024, 5, 1, 14, 0, 1, tzinfo=cet)) == rid
    with pytest.raises(InputError):
        new_release_id("HEAD", t)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "latest",
        "20240501T120001Z",
        "20240501T120001Z-XYZ1234",
        "20241301T120001Z-0123456",  # month 13
        "20240501T120001Z-0123456789abcdef0",  # sha too long
        "../20240501T120001Z-0123456",
        "20240501T120001Z-0123456/..",
        "20240501T120001Z-0123456\n",
        " 20240501T120001Z-0123456",
    ],
)
def test_release_id_validator_refuses_anything_else(bad: str) -> None:
    assert not is_release_id(bad)
    with pytest.raises(InputError, match="invalid release id"):
        validate_release_id(bad)


# -- paths and plain builders --------------------------------------------------------------


@pytest.mark.parametrize(
    "root", ["", "relative/x", "/", "/srv/app/", "/srv/../etc", "//srv", "/a\nb"]
)
def test_deploy_root_must_be_absolute_normalised_not_slash(root: str) -> None:
    with pytest.raises(InputError, match="deploy root"):
        rc.releases_dir(root)


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "./a", "a/", "a//b", "."]
)
def test_relative_paths_must_stay_inside(path: str) -> None:
    with pytest.raises(InputError):
        rc.check_relative_path(path)
    with pytest.raises(InputError, match="shared path"):
        rc.check_release_paths(["ok", path], "shared path")


def test_script_builders_exact_argv() -> None:
    rel2 = f"{ROOT}/releases/{R2}"
    assert rc.release_dir(ROOT, R2) == rel2
    assert rc.current_link(ROOT) == f"{ROOT}/current"
    assert rc.switch_current_script(ROOT, R2) == [
        "sh", "-c", rc.SWITCH_SCRIPT, "quayside",
        rel2, f"releases/{R2}", f"{ROOT}/.current.tmp-{R2}", f"{ROOT}/current",
    ]  # fmt: skip
    assert rc.read_facts(ROOT) == ["sh", "-c", rc.FACTS_SCRIPT, "quayside", ROOT]


def test_parsers() -> None:
    assert rc.parse_current(f"releases/{R1}\n") == R1
    assert rc.parse_current(f"{ROOT}/releases/{R1}\n", ROOT) == R1
    assert rc.parse_current(f"/elsewhere/releases/{R1}\n", ROOT) is None
    assert rc.parse_current("releases/../../etc\n") is None
    assert rc.parse_current("") is None


# -- the scripts, run for real --------------------------------------------------------------


def layout(tmp_path: Path) -> tuple[str, Path]:
    root = tmp_path / "deploy root $(x) 'q'"
    rel = root / "releases" / R1
    rel.mkdir(parents=True)
    (root / "shared").mkdir()
    (rel / "keep").mkdir()
    for name in HOSTILE:
        (rel / "keep" / name).write_text(name)
        (rel / name).write_text(name)
    (rel / "logs").mkdir()
    (rel / "logs" / "old.log").write_text("in release")
    return str(root), rel


def test_switch_is_atomic_and_refuses_missing_release(tmp_path: Path) -> None:
    root, _ = layout(tmp_path)
    current = Path(root) / "current"
    assert run(rc.switch_current_script(root, R1)).returncode == 0
    assert os.readlink(current) == f"releases/{R1}"
    assert (current / "keep" / HOSTILE[2]).read_text() == HOSTILE[2]
    (Path(root) / "releases" / R2).mkdir()
    assert run(rc.switch_current_script(root, R2)).returncode == 0
    assert os.readlink(current) == f"releases/{R2}"
    assert not list(Path(root).glob(".current.tmp-*"))
    result = run(rc.switch_current_script(root, R3))
    assert result.returncode == 3 and os.readlink(current) == f"releases/{R2}"
    assert rc.parse_facts(run(rc.read_facts(root)).stdout, root).current == R2


def test_read_facts_in_one_command(tmp_path: Path) -> None:
    root, rel = layout(tmp_path)
    empty = run(rc.read_facts(str(tmp_path / "nothing-here")))
    assert empty.returncode == 0
    facts = rc.parse_facts(empty.stdout)
    assert facts == rc.LayoutFacts(current=None, releases=[], manifest_json=None)
    (Path(root) / "releases" / R2).mkdir()
    (Path(root) / "releases" / "not-a-release").mkdir()
    manifest = build_manifest(rel)
    (rel / MANIFEST_FILENAME).write_text(manifest.to_json())
    run(rc.switch_current_script(root, R1))
    facts = rc.parse_facts(run(rc.read_facts(root)).stdout, root)
    assert facts.current == R1 and facts.releases == [R1, R2]
    assert facts.manifest_json == manifest.to_json()
    # a current link made by another tool is reported, not trusted
    os.unlink(Path(root) / "current")
    os.symlink("/somewhere/else", Path(root) / "current")
    facts = rc.parse_facts(run(rc.read_facts(root)).stdout, root)
    assert facts.current is None and facts.current_raw == "/somewhere/else"


# -- rsync ---------------------------------------------------------------------------------


def test_rsync_push_exact_argv(tmp_path: Path) -> None:
    ssh = ["ssh", "-p", "2222", "-i", "/keys/deploy key", "-o", "BatchMode=yes"]
    assert rsync_push("/build/app", "deploy@web1:/srv/app/releases/x", ssh) == [
        "rsync", "-a", "-s", "--stats",
        "-e", "ssh -p 2222 -i '/keys/deploy key' -o BatchMode=yes",
        "--", "/build/app/", "deploy@web1:/srv/app/releases/x",
    ]  # fmt: skip
    assert rsync_push(
        Path("/build/app/"),
        "web1:/srv/app/releases/b",
        ssh,
        link_dest="/srv/app/releases/a",
        files_from=Path("/tmp/list"),
        timeout=30,
    ) == [
        "rsync", "-a", "-s", "--stats",
        "-e", "ssh -p 2222 -i '/keys/deploy key' -o BatchMode=yes",
        "--link-dest=/srv/app/releases/a", "--from0", "--files-from=/tmp/list", "--timeout=30",
        "--", "/build/app/", "web1:/srv/app/releases/b",
    ]  # fmt: skip
    assert rsync_push("/a", "/b", None, delete=True) == [
        "rsync", "-a", "-s", "--stats", "--delete", "--", "/a/", "/b",
    ]  # fmt: skip
    with pytest.raises(InputError):
        rsync_push("/a", "/b", None, delete=True, files_from=Path("/l"))
    with pytest.raises(InputError):
        rsync_push("/a", "-e sh", None)
    with pytest.raises(InputError):
        rsync_push("/a", "/b", [])


def test_remote_dest() -> None:
    assert remote_dest("deploy", "web1", "/srv/x") == "deploy@web1:/srv/x"
    assert remote_dest(None, "127.0.0.11", "/srv/x") == "127.0.0.11:/srv/x"
    assert remote_dest("d", "::1", "/srv") == "d@[::1]:/srv"
    for user, host, path in [
        ("d", "-oX", "/s"),
        ("a@b", "h", "/s"),
        ("d", "h", "rel"),
        ("d", "h s", "/s"),
    ]:
        with pytest.raises(InputError):
            remote_dest(user, host, path)


def test_files_from_bytes() -> None:
    assert files_from_bytes(["a", "b\nc"]) == b"a\x00b\nc\x00"
    assert files_from_bytes([]) == b""
    with pytest.raises(InputError):
        files_from_bytes(["../x"])


def test_real_rsync_with_hostile_names_link_dest_and_files_from(tmp_path: Path) -> None:
    need_binary("rsync", "rsync")
    src = tmp_path / "src $(touch PWNED)"
    (src / "sub dir").mkdir(parents=True)
    for name in HOSTILE:
        (src / "sub dir" / name).write_text(name * 100)
    (src / "big.bin").write_bytes(os.urandom(200_000))
    dest1 = tmp_path / "dest 'one'"
    # a wrapper standing in for ssh: rsync must hand it a correctly split argv
    first = subprocess.run(rsync_push(src, str(dest1), None), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    stats = parse_rsync_stats(first.stdout)
    assert stats.files_sent == len(HOSTILE) + 1
    assert stats.bytes_sent > 200_000
    assert build_manifest(dest1) == build_manifest(src)
    assert not list(tmp_path.rglob("PWNED*"))

    # second release: one file changed; --link-dest hard-links the rest
    (src / "sub dir" / HOSTILE[4]).write_text("changed")
    dest2 = tmp_path / "dest two"
    second = subprocess.run(
        rsync_push(src, str(dest2), None, link_dest=str(dest1)), capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    stats = parse_rsync_stats(second.stdout)
    assert stats.files_sent == 1 and stats.bytes_sent < 20_000
    assert (dest2 / "big.bin").stat().st_ino == (dest1 / "big.bin").stat().st_ino
    assert build_manifest(dest2) == build_manifest(src)

    # files-from: only the listed (NUL-separated) paths are sent
    listing = tmp_path / "files"
    listing.write_bytes(files_from_bytes([f"sub dir/{HOSTILE[4]}", f"sub dir/{HOSTILE[1]}"]))
    dest3 = tmp_path / "dest3"
    third = subprocess.run(
        rsync_push(src, str(dest3), None, files_from=listing), capture_output=True, text=True
    )
    assert third.returncode == 0, third.stderr
    assert sorted(p.name for p in (dest3 / "sub dir").iterdir()) == sorted(
        HOSTILE[i] for i in (1, 4)
    )
    assert parse_rsync_stats(third.stdout).files_sent == 2


def test_real_rsync_through_an_ssh_stand_in(tmp_path: Path) -> None:
    """The -e value is split by rsync itself: an argv element with spaces must survive."""
    need_binary("rsync", "rsync")
    fake_ssh = tmp_path / "fake ssh"
    fake_ssh.write_text(
        "#!/bin/sh\n"
        '# $1 is "--marker with space", $2 the host; the rest is the remote command\n'
        '[ "$1" = "--marker with space" ] || { echo "bad argv: $1" >&2; exit 9; }\n'
        "shift 2\n"
        'exec sh -c "$*"\n'
    )
    fake_ssh.chmod(0o755)
    src = tmp_path / "src"
    src.mkdir()
    (src / HOSTILE[1]).write_text("q")
    (src / HOSTILE[2]).write_text("p")
    dest = tmp_path / "remote dest $(touch PWNED)"
    argv = rsync_push(src, f"somehost:{dest}", [str(fake_ssh), "--marker with space"])
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == sorted(HOSTILE[1:3])
    assert not list(tmp_path.rglob("PWNED*"))


RSYNC_31_OUTPUT = """
Number of files: 5,003 (reg: 5,000, dir: 3)
Number of created files: 5,002 (reg: 5,000, dir: 2)
Number of deleted files: 0
Number of regular files transferred: 5,000
Total file size: 52,428,800 bytes
Total transferred file size: 52,428,800 bytes
Literal data: 52,428,800 bytes
Matched data: 0 bytes
File list size: 98,295
File list generation time: 0.004 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 52,579,813
Total bytes received: 95,121

sent 52,579,813 bytes  received 95,121 bytes  7,022,657.87 bytes/sec
total size is 52,428,800  speedup is 1.00
"""

RSYNC_30_OUTPUT = """
Number of files: 12
Number of files transferred: 3
Total file size: 1234 bytes
Total transferred file size: 300 bytes
Literal data: 300 bytes
Matched data: 0 bytes
File list size: 210
Total bytes sent: 612
Total bytes received: 70
"""


def test_parse_rsync_stats() -> None:
    s = parse_rsync_stats(RSYNC_31_OUTPUT)
    assert (s.files_sent, s.bytes_sent) == (5000, 52_579_813)
    assert s.extra["total_bytes_received"] == 95_121
    assert s.extra["number_of_files"] == 5003
    assert s.extra["literal_data"] == 52_428_800
    assert "file_list_generation_time" not in s.extra
    old = parse_rsync_stats(RSYNC_30_OUTPUT)
    assert (old.files_sent, old.bytes_sent) == (3, 612)
    human = parse_rsync_stats("Number of regular files transferred: 2\nTotal bytes sent: 1.50K\n")
    assert human.bytes_sent == 1536
    with pytest.raises(InputError):
        parse_rsync_stats("sent 10 bytes")
