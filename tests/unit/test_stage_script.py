"""The host-side stage script (quayside/deploy/stage.sh) run directly with ``sh`` on local
temporary directories, as a user could paste it: hostile names, paths that must never leave
the release, the controller's go before any switch, and shellcheck."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from quayside.commands import release as rc
from quayside.deploy import scripts
from quayside.deploy.payload_tar import build_tar
from quayside.deploy.scripts import StageRequest
from quayside.manifest import MANIFEST_FILENAME, build_manifest
from quayside.plans.release import HostFacts, prune_candidates
from testbed.require import need_binary

SCRIPT = Path(scripts.__file__).with_name("stage.sh")
R1 = "20240501T120000Z-aaaaaaaaaaaa"
R2 = "20240502T120000Z-bbbbbbbbbbbb"
R3 = "20240503T120000Z-cccccccccccc"
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


def run_stage(
    request: StageRequest, stdin: bytes | None = None, *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``sh stage.sh ARGS`` with the request's STAGE_* values; stdin defaults to what the
    controller sends (payload, then the go when the stage switches)."""
    command = scripts.stage(request)
    assert command.argv[:4] == ["sh", "-c", scripts.STAGE_SCRIPT, rc.SCRIPT_NAME]
    return subprocess.run(
        ["sh", str(SCRIPT), *command.argv[4:]],
        env={**os.environ, **command.env},
        input=scripts.stage_stdin(request) if stdin is None else stdin,
        capture_output=True,
        cwd=cwd,
    )


def hostile_release(tmp_path: Path) -> tuple[str, Path]:
    """A deploy root (with a hostile name) holding release R1 full of hostile names."""
    root = tmp_path / "deploy root $(x) 'q'"
    rel = root / "releases" / R1
    (rel / "keep").mkdir(parents=True)
    (root / "shared").mkdir()
    for name in HOSTILE:
        (rel / "keep" / name).write_text(name)
        (rel / name).write_text(name)
    (rel / "logs").mkdir()
    (rel / "logs" / "old.log").write_text("in release")
    return str(root), rel


def test_the_file_starts_with_a_version_line_and_is_what_the_controller_sends() -> None:
    lines = SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/bin/sh" and lines[1].startswith("# quayside stage script, version ")
    # sent without its comment lines (the heredoc and multi-line strings have none), with the
    # shared definitions of read_facts.sh after its header
    sent = scripts.STAGE_SCRIPT.splitlines()
    prelude = rc.FACTS_PRELUDE.splitlines()[2:]
    assert sent[:2] == lines[:2] and sent[2 : 2 + len(prelude)] == prelude
    own = sent[2 + len(prelude) :]
    assert len(own) < len(lines) and [line for line in lines if line in own] == own
    # the names the controller and the script share
    for name in (
        MANIFEST_FILENAME,
        scripts.NEXT_PREFIX,
        scripts.UNSWITCHED_PREFIX,
        scripts.GUARD_MISMATCH,
        scripts.FACTS_AFTER,
        scripts.COMMIT_PREFIX,
        f"exit {scripts.GUARD_EXIT}",
        f"exit {scripts.NO_COMMIT_EXIT}",
    ):
        assert name in scripts.STAGE_SCRIPT, name


def test_shellcheck_finds_nothing() -> None:
    shellcheck = need_binary("shellcheck", "shellcheck")  # fails under CI=true, skips elsewhere
    result = subprocess.run([shellcheck, "--shell=sh", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_prepare_hard_links_and_removes_hostile_names_never_outside(tmp_path: Path) -> None:
    root, rel1 = hostile_release(tmp_path)
    # the previous release links 'shared-logs' into shared/: removals under it must not escape
    shared = Path(root) / "shared" / "shared-logs"
    shared.mkdir()
    (shared / "precious.log").write_text("keep me")
    os.symlink(shared, rel1 / "shared-logs")
    remove = [*HOSTILE[:5], "keep/-rf", "shared-logs/precious.log", "missing/file"]
    request = StageRequest(root, R2, mode="prev", prev=R1, remove=remove)
    result = run_stage(request, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rel2 = Path(root) / "releases" / R2
    assert sorted(p.name for p in rel2.iterdir()) == sorted(
        ["keep", "logs", "shared-logs", *HOSTILE[5:]]
    )
    assert sorted(p.name for p in (rel2 / "keep").iterdir()) == sorted(set(HOSTILE) - {"-rf"})
    # hard links, not copies; the previous release is untouched
    assert (rel2 / "keep" / HOSTILE[0]).stat().st_ino == (rel1 / "keep" / HOSTILE[0]).stat().st_ino
    assert sorted(p.name for p in rel1.iterdir()) == sorted(
        ["keep", "logs", "shared-logs", *HOSTILE]
    )
    assert (shared / "precious.log").read_text() == "keep me"
    assert not list(tmp_path.rglob("PWNED*"))
    # re-running (a retried task) starts again from the previous release
    (rel2 / "stray").write_text("x")
    assert run_stage(request, cwd=tmp_path).returncode == 0
    assert not (rel2 / "stray").exists()


def test_prepare_fails_clearly_without_the_previous_release(tmp_path: Path) -> None:
    root, _ = hostile_release(tmp_path)
    result = run_stage(StageRequest(root, R2, mode="prev", prev=R3))
    assert result.returncode == 3 and b"does not exist" in result.stderr
    assert not (Path(root) / "releases" / R2).exists()


def test_shared_paths_are_linked_and_never_through_a_symlinked_parent(tmp_path: Path) -> None:
    root, rel = hostile_release(tmp_path)
    paths = ["logs", "storage/app uploads", ".env", "odd $(touch PWNED)\nname"]
    keep = StageRequest(root, R1, mode="keep", shared=paths)
    result = run_stage(keep, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for p in paths:
        assert os.readlink(rel / p) == f"{root}/shared/{p}"
    assert (Path(root) / "shared" / "storage").is_dir()
    assert not list(tmp_path.rglob("PWNED*"))
    assert run_stage(keep).returncode == 0  # idempotent
    # a path under a symlinked parent is refused, not followed; the release is kept (keep)
    os.symlink(tmp_path, rel / "escape")
    result = run_stage(StageRequest(root, R1, mode="keep", shared=["escape/evil"]))
    assert result.returncode == 4 and b"parent directory is a symlink" in result.stderr
    assert not (tmp_path / "evil").exists()


def _first_release(tmp_path: Path) -> tuple[str, StageRequest, bytes]:
    """A deploy root, and a fresh stage of R1 that switches, with its tar payload."""
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "index.php").write_text("<?php echo 1;")
    manifest = build_manifest(payload).to_json()
    body = build_tar(payload, ["index.php"], manifest)
    root = str(tmp_path / "root")
    request = StageRequest(
        root,
        R1,
        mode="fresh",
        extract="tar",
        payload_bytes=len(body),
        switch=True,
    )
    return root, request, body


def test_without_the_go_after_the_payload_nothing_switches_and_nothing_stays(
    tmp_path: Path,
) -> None:
    """A controller that dies after (or during) the payload sends end-of-file instead of the
    go: the host removes what it staged and exits 5, current untouched."""
    root, request, body = _first_release(tmp_path)
    for stdin in (body, body[: len(body) // 2], body + b"quayside-commit someone-else\n"):
        result = run_stage(request, stdin)
        assert result.returncode != 0
        assert not (Path(root) / "current").exists()
        assert os.listdir(Path(root) / "releases") == []
    assert result.returncode == scripts.NO_COMMIT_EXIT
    assert b"no go from the controller" in result.stderr and b"not switched" in result.stderr

    result = run_stage(request, body + scripts.commit_line(R1))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"switched:\n"
    assert os.readlink(Path(root) / "current") == f"releases/{R1}"
    assert (Path(root) / "current" / "index.php").read_text() == "<?php echo 1;"
    assert (Path(root) / "current" / MANIFEST_FILENAME).is_file()


def test_a_stage_that_does_not_switch_needs_no_go(tmp_path: Path) -> None:
    root, request, body = _first_release(tmp_path)
    staged = StageRequest(root, R1, mode="fresh", extract="tar", payload_bytes=len(body))
    result = run_stage(staged, body)
    assert result.returncode == 0, result.stderr
    assert (Path(root) / "releases" / R1 / MANIFEST_FILENAME).is_file()
    assert not (Path(root) / "current").exists()
    # the switch of a staged release waits for its go too (its whole stdin)
    switch = StageRequest(root, R1, mode="keep", switch=True)
    assert run_stage(switch, b"").returncode == scripts.NO_COMMIT_EXIT
    assert not (Path(root) / "current").exists()
    assert not (Path(root) / "releases" / R1).exists()


def test_the_scripts_facts_are_what_read_facts_prints(tmp_path: Path) -> None:
    """The stage script answers a guard mismatch with ``facts``: the same text as
    ``read_facts`` (one function, read_facts.sh, sent in front of both)."""
    root, request, body = _first_release(tmp_path)
    assert run_stage(request, body + scripts.commit_line(R1)).returncode == 0
    (Path(root) / "releases" / R2).mkdir()
    known = "0" * 64
    expected = subprocess.run(rc.read_facts(root, known), capture_output=True).stdout
    guarded = StageRequest(
        root, R3, mode="prev", prev=R1, switch=True, guard=(known, "current:releases/x")
    )
    result = run_stage(guarded)
    assert result.returncode == scripts.GUARD_EXIT
    assert result.stdout == scripts.GUARD_MISMATCH.encode() + b"\n" + expected
    assert b"manifest:" in expected and not (Path(root) / "releases" / R3).exists()


def test_a_current_that_is_not_a_symlink_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    root, request, body = _first_release(tmp_path)
    (Path(root) / "current").mkdir(parents=True)
    (Path(root) / "current" / "index.html").write_text("by hand")
    result = run_stage(request, body + scripts.commit_line(R1))
    assert result.returncode == 3
    assert b"current is a directory, not a symlink" in result.stderr
    assert b"move it away" in result.stderr and b"nothing was changed" in result.stderr
    assert not (Path(root) / "releases" / R1).exists()
    assert (Path(root) / "current" / "index.html").read_text() == "by hand"
    rollback = subprocess.run(
        ["sh", str(ROLLBACK), root, R1], capture_output=True, env=dict(os.environ)
    )
    assert rollback.returncode == 3 and b"is not a symlink" in rollback.stderr


def test_the_next_switch_removes_what_interrupted_runs_left(tmp_path: Path) -> None:
    """Release dirs never sealed, temp links and next-deploy copies of pruned releases go;
    a directory that is not named like a release is never touched."""
    root, request, body = _first_release(tmp_path)
    assert run_stage(request, body + scripts.commit_line(R1)).returncode == 0
    base = Path(root)
    (base / "releases" / R2).mkdir()  # an interrupted stage: no manifest
    (base / "releases" / R2 / "half.php").write_text("x")
    (base / "releases" / "notes").mkdir()
    old = "20240401T120000Z-dddddddddddd"
    (base / "releases" / old).mkdir()
    (base / "releases" / old / MANIFEST_FILENAME).write_text("{}")
    (base / f"{scripts.NEXT_PREFIX}{old}").mkdir()
    os.symlink(f"releases/{R2}", base / f".current.tmp-{R2}")
    staged = StageRequest(
        root,
        R3,
        mode="prev",
        prev=R1,
        extract="manifest",
        payload_bytes=2,
        switch=True,
        prune=[old],
    )
    result = run_stage(staged, b"{}" + scripts.commit_line(R3))
    assert result.returncode == 0, result.stderr
    assert os.readlink(base / "current") == f"releases/{R3}"
    assert sorted(p.name for p in (base / "releases").iterdir()) == sorted([R1, R3, "notes"])
    assert not list(base.glob(".current.tmp-*"))
    assert not list(base.glob(f"{scripts.NEXT_PREFIX}*"))


def test_a_release_never_switched_to_takes_no_keep_slot_and_goes_at_the_next_switch(
    tmp_path: Path,
) -> None:
    """A run killed in its pre-switch hooks leaves a sealed release that never served: marked
    not yet switched, facts leave it out (so it pushes no rollback target out of the
    keep_releases slots) and the next switch removes it; a switched release is unmarked."""
    root, request, body = _first_release(tmp_path)
    base = Path(root)
    older = "20240401T120000Z-dddddddddddd"
    (base / "releases" / older).mkdir(parents=True)
    (base / "releases" / older / MANIFEST_FILENAME).write_text("{}")
    assert run_stage(request, body + scripts.commit_line(R1)).returncode == 0
    assert not list(base.glob(f"{scripts.UNSWITCHED_PREFIX}*"))  # R1 switched: unmarked

    # staged without switching (pre-switch hooks to run), then the run is killed
    hooks_first = StageRequest(
        root, R2, mode="prev", prev=R1, extract="manifest", payload_bytes=2, switch=False
    )
    assert run_stage(hooks_first, b"{}").returncode == 0
    assert (base / "releases" / R2 / MANIFEST_FILENAME).is_file()  # sealed, complete
    mark = base / f"{scripts.UNSWITCHED_PREFIX}{R2}"
    assert os.readlink(mark) == f"releases/{R2}"
    facts = HostFacts.from_output(
        subprocess.run(rc.read_facts(root), capture_output=True, text=True).stdout, root
    )
    assert (facts.current, facts.releases) == (R1, (older, R1))

    # the next deploy keeps 3: itself, R1 (the previous) and the older rollback target
    prune = prune_candidates(facts.releases, new=R3, current=R1, keep_releases=3)
    assert prune == ()
    staged = StageRequest(
        root,
        R3,
        mode="prev",
        prev=R1,
        extract="manifest",
        payload_bytes=2,
        switch=True,
        prune=prune,
        facts_after="0" * 64,
    )
    result = run_stage(staged, b"{}" + scripts.commit_line(R3))
    assert result.returncode == 0, result.stderr
    assert os.readlink(base / "current") == f"releases/{R3}"
    assert sorted(p.name for p in (base / "releases").iterdir()) == sorted([older, R1, R3])
    assert not list(base.glob(f"{scripts.UNSWITCHED_PREFIX}*"))
    # the facts it answers with are what read_facts prints now
    after = result.stdout.decode().split(f"{scripts.FACTS_AFTER}\n", 1)[1]
    assert {line for line in after.splitlines() if line.startswith("release:")} == {
        f"release:{r}" for r in (older, R1, R3)
    }

    # the pre-switch path's own switch (mode keep) consumes the mark it staged with
    hooks_first = replace(hooks_first, new=RIDS[5], prev=R3)
    assert run_stage(hooks_first, b"{}").returncode == 0
    switch = StageRequest(root, RIDS[5], mode="keep", switch=True)
    assert run_stage(switch, scripts.commit_line(RIDS[5])).returncode == 0
    assert os.readlink(base / "current") == f"releases/{RIDS[5]}"
    assert not list(base.glob(f"{scripts.UNSWITCHED_PREFIX}*"))
    # and a release kept as it is (sealed, switched to before) is never marked
    back = StageRequest(root, R1, mode="keep", switch=True)
    assert run_stage(back, scripts.commit_line(R1)).returncode == 0
    assert not list(base.glob(f"{scripts.UNSWITCHED_PREFIX}*"))
    assert (base / "releases" / RIDS[5] / MANIFEST_FILENAME).is_file()


def test_a_rollback_removes_releases_never_switched_to(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _releases(root, *RIDS[:4])
    os.symlink(f"releases/{RIDS[2]}", root / "current")
    os.symlink(f"releases/{RIDS[3]}", root / f"{scripts.UNSWITCHED_PREFIX}{RIDS[3]}")
    argv = scripts.switch_if_complete(str(root), RIDS[1], 3)
    result = subprocess.run(["sh", str(ROLLBACK), *argv[4:]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    wanted = sorted(RIDS[:3])  # the marked one took no slot: the oldest stays

    def state() -> list[str]:
        return sorted(p.name for p in (root / "releases").iterdir())

    deadline = time.monotonic() + 20
    while state() != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state() == wanted
    assert not list(root.glob(f"{scripts.UNSWITCHED_PREFIX}*"))


def _releases(root: Path, *ids: str) -> None:
    for rid in ids:
        (root / "releases" / rid).mkdir(parents=True)
        (root / "releases" / rid / MANIFEST_FILENAME).write_text("{}")
        (root / f"{scripts.NEXT_PREFIX}{rid}").mkdir()


ROLLBACK = Path(scripts.__file__).with_name("rollback_switch.sh")
RIDS = [f"2024050{d}T120000Z-{c * 12}" for d, c in zip(range(1, 7), "abcdef", strict=True)]


@pytest.mark.parametrize(
    ("current", "target", "keep", "left"),
    [
        (5, 3, 3, [3, 4, 5]),  # the target, the one it replaces, the newest other
        (5, 0, 2, [0, 5]),
        (5, 0, 1, [0, 5]),  # the replaced release stays for a switch back
        (2, 4, 4, [2, 3, 4, 5]),
        (5, 3, None, [0, 1, 2, 3, 4, 5]),  # no keep: nothing pruned
    ],
)
def test_a_rollback_keeps_exactly_keep_releases(
    tmp_path: Path, current: int, target: int, keep: int | None, left: list[int]
) -> None:
    root = tmp_path / "root"
    _releases(root, *RIDS)
    (root / "releases" / "notes").mkdir()
    os.symlink(f"releases/{RIDS[current]}", root / "current")
    argv = scripts.switch_if_complete(str(root), RIDS[target], keep)
    assert argv[2] == scripts.ROLLBACK_SWITCH_SCRIPT
    result = subprocess.run(["sh", str(ROLLBACK), *argv[4:]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"switched:releases/{RIDS[current]}\n"
    assert os.readlink(root / "current") == f"releases/{RIDS[target]}"
    # pruned in the background, after the answer; only the serving release keeps its copy
    wanted = (sorted([RIDS[i] for i in left] + ["notes"]), [f"{scripts.NEXT_PREFIX}{RIDS[target]}"])

    def state() -> tuple[list[str], list[str]]:
        names = sorted(p.name for p in (root / "releases").iterdir())
        return names, [p.name for p in root.glob(f"{scripts.NEXT_PREFIX}*")]

    deadline = time.monotonic() + 20
    while state() != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state() == wanted


def test_a_rollback_to_a_release_the_host_lacks_says_missing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _releases(root, RIDS[0])
    os.symlink(f"releases/{RIDS[0]}", root / "current")
    (root / "releases" / RIDS[1]).mkdir()  # never sealed
    for rid in (RIDS[1], RIDS[2]):
        result = subprocess.run(
            ["sh", str(ROLLBACK), str(root), rid, "2"], capture_output=True, text=True
        )
        assert (result.returncode, result.stdout) == (0, "missing\n")
    assert os.readlink(root / "current") == f"releases/{RIDS[0]}"


def test_the_rollback_switch_passes_shellcheck() -> None:
    shellcheck = need_binary("shellcheck", "shellcheck")  # fails under CI=true, skips elsewhere
    result = subprocess.run(
        [shellcheck, "--shell=sh", str(ROLLBACK)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
