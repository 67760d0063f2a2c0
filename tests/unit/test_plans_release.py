"""Release plans from faked host facts (pure: no host, no files)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from quayside.commands import release as rc
from quayside.commands.rsync import files_from_bytes, parse_rsync_stats, rsync_push
from quayside.deploy import scripts
from quayside.errors import InputError
from quayside.manifest import MANIFEST_FILENAME, Entry, Manifest, build_manifest
from quayside.plans.release import (
    CreateRelease,
    HostFacts,
    LinkShared,
    PrepareFromPrevious,
    Prune,
    ReleasePlan,
    ReleaseTarget,
    Switch,
    Upload,
    WriteManifest,
    describe,
    plan_release,
    prune_candidates,
)
from testbed.require import need_binary

R = [f"202405{d:02d}T120000Z-{c * 12}" for d, c in zip(range(1, 10), "abcdef012", strict=True)]
NEW = "20240601T000000Z-0123456789ab"


def f(size: int, h: str, mode: int = 0o644) -> Entry:
    return Entry("file", mode, size, h * 64)


D = Entry("dir", 0o755)

OLD = Manifest(
    {
        "index.php": f(10, "a"),
        "lib": D,
        "lib/a.php": f(20, "b"),
        "lib/gone.php": f(7, "c"),
        "old-dir": D,
        "old-dir/x": f(1, "d"),
        "logs": D,
        "logs/.gitkeep": f(0, "e"),
        "swap": f(3, "f"),
        "bin": D,
        "bin/run": f(5, "1", 0o755),
    }
)
NEW_M = Manifest(
    {
        "index.php": f(12, "9"),  # changed content
        "lib": D,
        "lib/a.php": f(20, "b"),
        "lib/new.php": f(30, "8"),  # added
        "logs": D,
        "logs/.gitkeep": f(0, "e"),
        "swap": D,  # file -> dir
        "swap/inner": f(4, "7"),
        "bin": Entry("dir", 0o750),  # mode only
        "bin/run": f(5, "1", 0o700),  # mode only
    }
)


def target(manifest: Manifest = NEW_M, shared: tuple[str, ...] = ("logs",), keep: int = 3):
    return ReleaseTarget(NEW, manifest, shared, keep)


def steps_of(plan: ReleasePlan, kind: type) -> list:
    return [s for s in plan.steps if isinstance(s, kind)]


def test_first_release_uploads_everything_but_shared() -> None:
    plan = plan_release(HostFacts(None), target())
    assert [type(s) for s in plan.steps] == [
        CreateRelease,
        Upload,
        LinkShared,
        WriteManifest,
        Switch,
    ]
    create, upload, link, write, switch = plan.steps
    assert create == CreateRelease(NEW, replace_existing=False)
    assert upload.files == tuple(p for p in NEW_M if not p.startswith("logs"))
    assert upload.bytes == 12 + 20 + 30 + 4 + 5 and upload.link_dest is None
    assert link == LinkShared(NEW, ("logs",))
    assert Manifest.from_json(write.content) == NEW_M.with_shared(["logs"])
    assert switch == Switch(NEW, None)
    assert plan.diff is not None and plan.diff.added == tuple(NEW_M)


def test_incremental_release_prepares_from_previous_and_sends_only_changes() -> None:
    facts = HostFacts(R[2], OLD.with_shared(["logs"]), tuple(R[:3]))
    plan = plan_release(facts, target())
    assert [type(s) for s in plan.steps] == [
        PrepareFromPrevious,
        Upload,
        LinkShared,
        WriteManifest,
        Switch,
        Prune,
    ]
    prep, upload = plan.steps[0], plan.steps[1]
    # removed, changed files (never written through a hard link), kind changes, shared
    # paths (old and new: their links came along with cp -al) and the old manifest
    assert prep == PrepareFromPrevious(
        R[2],
        NEW,
        (
            MANIFEST_FILENAME,
            "bin/run",
            "index.php",
            "lib/gone.php",
            "logs",
            "old-dir",
            "swap",
        ),
    )
    assert upload.files == ("bin", "bin/run", "index.php", "lib/new.php", "swap", "swap/inner")
    assert upload.bytes == 5 + 12 + 30 + 4
    assert upload.link_dest is None
    assert plan.steps[-2:] == (Switch(NEW, R[2]), Prune((R[0],)))
    assert plan.diff is not None
    assert plan.diff.removed == ("lib/gone.php", "old-dir", "old-dir/x")


def test_a_path_no_longer_shared_is_sent_again() -> None:
    # 'logs' was a shared link in the current release and is now ordinary content
    facts = HostFacts(R[0], OLD.with_shared(["logs"]), (R[0],))
    plan = plan_release(facts, target(OLD, shared=()))
    prep, upload = plan.steps[0], plan.steps[1]
    assert isinstance(prep, PrepareFromPrevious) and "logs" in prep.remove
    assert isinstance(upload, Upload) and upload.files == ("logs", "logs/.gitkeep")
    assert not steps_of(plan, LinkShared)


def test_same_digest_is_no_change() -> None:
    facts = HostFacts(R[1], NEW_M.with_shared(["logs"]), tuple(R[:2]))
    plan = plan_release(facts, target())
    assert plan.no_change and plan.steps == ()
    assert describe(plan) == f"no change: {R[1]} already has this content"


def test_shared_path_change_alone_is_a_change() -> None:
    facts = HostFacts(R[1], NEW_M.with_shared(["logs"]), tuple(R[:2]))
    plan = plan_release(facts, target(shared=("logs", ".env")))
    assert not plan.no_change
    prep = plan.steps[0]
    assert isinstance(prep, PrepareFromPrevious) and prep.remove == (
        ".env",
        MANIFEST_FILENAME,
        "logs",
    )
    assert not steps_of(plan, Upload)
    assert steps_of(plan, LinkShared) == [LinkShared(NEW, (".env", "logs"))]


def test_unknown_current_content_sends_everything_with_link_dest() -> None:
    plan = plan_release(HostFacts(R[1], None, tuple(R[:2])), target())
    create, upload = plan.steps[0], plan.steps[1]
    assert create == CreateRelease(NEW)
    assert isinstance(upload, Upload) and upload.link_dest == R[1]
    assert len(upload.files) == len([p for p in NEW_M if not p.startswith("logs")])
    assert plan.diff is None
    assert "current content unknown" in describe(plan)


def test_leftover_dir_of_same_id_is_replaced() -> None:
    plan = plan_release(HostFacts(None, None, (NEW,)), target())
    assert plan.steps[0] == CreateRelease(NEW, replace_existing=True)


def test_refuses_to_rewrite_the_serving_release() -> None:
    with pytest.raises(InputError, match="is current"):
        plan_release(HostFacts(NEW, OLD, (NEW,)), target())


@pytest.mark.parametrize(
    "bad",
    [
        ReleaseTarget("latest", NEW_M),
        ReleaseTarget(NEW, NEW_M, ("../etc",)),
        ReleaseTarget(NEW, NEW_M, ("/var/log",)),
        ReleaseTarget(NEW, NEW_M, keep_releases=0),
    ],
)
def test_bad_targets_are_refused(bad: ReleaseTarget) -> None:
    with pytest.raises(InputError):
        plan_release(HostFacts(None), bad)


def test_prune_keeps_exactly_n_and_never_new_or_current() -> None:
    existing = tuple(R[:6])
    facts = HostFacts(R[5], OLD, existing)
    plan = plan_release(facts, target(keep=3))
    assert steps_of(plan, Prune) == [Prune((R[0], R[1], R[2], R[3]))]
    assert plan.prune == (R[0], R[1], R[2], R[3])
    # exactly keep_releases stay: the new, the current (becoming previous), the newest others
    assert prune_candidates(existing, new=NEW, current=R[5], keep_releases=2) == tuple(R[:5])
    # keep=1 still keeps the current (a failed verification switches back to it)
    assert prune_candidates(existing, new=NEW, current=R[5], keep_releases=1) == tuple(R[:5])
    # current rolled back to an old release: it survives, then the newest others
    assert prune_candidates(existing, new=NEW, current=R[1], keep_releases=3) == (
        R[0],
        R[2],
        R[3],
        R[4],
    )
    # nothing to prune
    assert prune_candidates(existing[:2], new=NEW, current=R[1], keep_releases=5) == ()
    # names that are not release ids are never candidates
    assert prune_candidates(("junk", "../x", R[0]), new=NEW, current=None, keep_releases=2) == ()
    assert prune_candidates(("junk", R[0]), new=NEW, current=None, keep_releases=1) == (R[0],)
    with pytest.raises(InputError):
        prune_candidates(existing, new=NEW, current=None, keep_releases=0)


def test_facts_from_read_facts_output() -> None:
    out = (
        f"current:releases/{R[1]}\nrelease:{R[0]}\nrelease:{R[1]}\nrelease:junk\n"
        f"manifest:{OLD.to_json()}\n"
    )
    facts = HostFacts.from_output(out)
    assert facts == HostFacts(R[1], OLD, (R[0], R[1]))
    broken = HostFacts.from_output(f"current:releases/{R[1]}\nrelease:{R[1]}\nmanifest:{{oops\n")
    assert broken == HostFacts(R[1], None, (R[1],))
    assert HostFacts.from_output("current:\n") == HostFacts(None)


def test_describe_for_dry_runs() -> None:
    facts = HostFacts(R[2], OLD.with_shared(["logs"]), tuple(R[:6]))
    plan = plan_release(facts, target(keep=3))
    text = describe(plan)
    lines = text.splitlines()
    assert lines[0] == f"release {NEW} (current: {R[2]})"
    assert lines[1] == "  2 added, 4 changed, 3 removed; 51 B to send, 8 B removed"
    assert "    + lib/new.php" in lines and "    ~ index.php" in lines
    assert "    - lib/gone.php" in lines
    assert "  send 6 path(s), 51 B" in lines
    # keep 3: the new, the current (rolled back to R2) and the newest other, R5
    assert lines[-1] == f"  prune 4 old release(s): {R[0]}, {R[1]}, {R[3]}, {R[4]}"
    first = describe(plan_release(HostFacts(None), target()))
    assert first.splitlines()[0] == f"release {NEW} (first release)"


# -- applying plans for real (local directories standing in for a host) ----------------------


def apply_locally(plan: ReleasePlan, src: Path, root: str, tmp: Path) -> None:
    """What the deploy engine's rsync transport does with a plan, run here with ``sh`` and
    ``rsync`` instead of an executor: the stage script prepares the release dir, rsync sends
    the files, the stage script links, seals, switches (on its go) and prunes."""

    def stage(request: scripts.StageRequest, payload: bytes = b"") -> None:
        command = scripts.stage(request)
        result = subprocess.run(
            command.argv,
            env={**os.environ, **command.env},
            input=scripts.stage_stdin(request, payload),
            capture_output=True,
        )
        assert result.returncode == 0, result.stderr

    new = plan.target.release_id
    prepare = steps_of(plan, PrepareFromPrevious)
    assert steps_of(plan, CreateRelease) or prepare
    stage(
        scripts.StageRequest(
            root,
            new,
            mode="prev" if prepare else "fresh",
            prev=prepare[0].prev if prepare else None,
            remove=prepare[0].remove if prepare else (),
        )
    )
    for step in steps_of(plan, Upload):
        listing = tmp / f"files-{step.release_id}"
        listing.write_bytes(files_from_bytes(step.files))
        argv = rsync_push(
            src,
            rc.release_dir(root, step.release_id),
            None,
            files_from=listing,
            link_dest=rc.release_dir(root, step.link_dest) if step.link_dest else None,
        )
        result = subprocess.run(argv, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        stats = parse_rsync_stats(result.stdout)
        assert stats.files_sent == len([p for p in step.files if (src / p).is_file()])
    (manifest,) = steps_of(plan, WriteManifest)
    shared = [p for step in steps_of(plan, LinkShared) for p in step.paths]
    pruned = [r for step in steps_of(plan, Prune) for r in step.release_ids]
    assert steps_of(plan, Switch) == [Switch(new, plan.facts.current)]
    body = manifest.content.encode()
    seal = scripts.StageRequest(
        root,
        new,
        mode="keep",
        extract="manifest",
        payload_bytes=len(body),
        shared=shared,
        switch=True,
        prune=pruned,
    )
    stage(seal, body)


def read_facts_locally(root: str) -> HostFacts:
    out = subprocess.run(rc.read_facts(root), capture_output=True, text=True, check=True).stdout
    return HostFacts.from_output(out, root)


ODD = ["sp ace.php", "q'uote\".php", "$(touch PWNED).php", "new\nline.php", "-rf"]


def test_plans_applied_for_real_give_exact_releases(tmp_path: Path) -> None:
    need_binary("rsync", "rsync")
    src = tmp_path / "build"
    root = str(tmp_path / "deploy root")
    (src / "lib").mkdir(parents=True)
    (src / "logs").mkdir()
    (src / "logs" / "in-payload.log").write_text("replaced by the shared link")
    for i, name in enumerate(ODD):
        (src / "lib" / name).write_text(f"v1 {i}")
    (src / "swap").write_text("file in v1")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    os.symlink("/etc/app.conf", src / "config")
    (Path(root) / "shared" / "logs").mkdir(parents=True)
    (Path(root) / "shared" / "logs" / "app.log").write_text("precious")

    def deploy(release_id: str) -> ReleasePlan:
        facts = read_facts_locally(root)
        plan = plan_release(facts, ReleaseTarget(release_id, build_manifest(src), ("logs",), 2))
        apply_locally(plan, src, root, tmp_path)
        return plan

    def check_release(release_id: str, expected: Manifest) -> None:
        got = build_manifest(Path(rc.release_dir(root, release_id)))
        assert os.readlink(Path(rc.release_dir(root, release_id)) / "logs") == f"{root}/shared/logs"
        strip = {p: e for p, e in got.items() if p != "logs"}
        assert strip == {
            p: e for p, e in expected.items() if p != "logs" and not p.startswith("logs/")
        }

    first = deploy(R[0])
    v1 = build_manifest(src)
    check_release(R[0], v1)
    assert read_facts_locally(root).current == R[0]

    # v2: changed content, removed file, file -> dir, mode change, a new odd name
    (src / "lib" / ODD[0]).write_text("v2 changed")
    (src / "lib" / ODD[3]).unlink()
    (src / "swap").unlink()
    (src / "swap").mkdir()
    (src / "swap" / "inner").write_text("dir in v2")
    (src / "run.sh").chmod(0o700)
    (src / "lib" / "new `x`.php").write_text("new")
    second = deploy(R[1])
    upload = steps_of(second, Upload)[0]
    assert set(upload.files) == {
        f"lib/{ODD[0]}",
        "run.sh",
        "swap",
        "swap/inner",
        "lib/new `x`.php",
    }
    check_release(R[1], build_manifest(src))
    check_release(R[0], v1)  # the previous release is untouched (no write through hard links)
    assert (Path(root) / "shared" / "logs" / "app.log").read_text() == "precious"
    unchanged = f"lib/{ODD[1]}"
    ino = lambda r: (Path(rc.release_dir(root, r)) / unchanged).stat().st_ino  # noqa: E731
    assert ino(R[0]) == ino(R[1])  # unchanged files are hard links

    # the same content again: no change
    again = plan_release(
        read_facts_locally(root), ReleaseTarget(R[2], build_manifest(src), ("logs",), 2)
    )
    assert again.no_change
    # a third release prunes nothing that is current or previous
    (src / "lib" / "third.php").write_text("3")
    third = deploy(R[2])  # keep_releases 2: exactly two stay, the new and the previous
    assert third.prune == (R[0],)
    assert read_facts_locally(root).releases == (R[1], R[2])
    (src / "lib" / "fourth.php").write_text("4")
    fourth = deploy(R[3])
    assert fourth.prune == (R[1],)
    assert read_facts_locally(root).releases == (R[2], R[3])
    assert not list(tmp_path.rglob("PWNED*"))
    assert first.steps[0] == CreateRelease(R[0])


@pytest.mark.parametrize("count", [0, 1, 3, 65, 200])
def test_under_any_agrees_with_the_path_component_test(count: int) -> None:
    """The fast test (one startswith for a few roots) and the per-component one (many
    roots) give the same answers; a sibling with a common prefix is not inside."""
    from quayside.plans.release import _under, under_any

    roots = {f"d{i}/sub" for i in range(count)} | ({"top"} if count else set())
    test = under_any(roots)
    paths = ["top", "top/x", "topx", "d0/sub", "d0/sub/f", "d0/subway", "d0", "x/d0/sub", ""]
    paths += [f"d{i}/sub/deep/f" for i in range(0, count, 7)]
    for path in paths:
        assert test(path) == _under(path, roots), path
    if count:
        assert test("d0/sub/f") and not test("d0/subway") and not test("topx")
