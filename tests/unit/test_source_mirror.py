"""GitMirror against real git repositories built in tmp_path: a work tree pushed to a bare
"origin", annotated and lightweight tags, branches, symlinks and hostile file names."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from quayside.commands import git as gitcmd
from quayside.errors import CommandFailed, InputError, NotFoundError, QuaysideError
from quayside.manifest import build_manifest
from quayside.source import mirror as mirror_mod
from quayside.source.mirror import GitMirror, mirror_name
from testbed.require import need_binary

HOSTILE = ["with space.txt", 'it\'s "quoted".txt', "$(touch PWNED).txt", "semi;colon&amp.txt"]


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada Lovelace",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada Lovelace",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class Origin:
    """A work tree plus the bare repository it pushes to, and the commits made in it."""

    first: str
    second: str
    third: str
    feature: str

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.bare = root / "origin.git"
        self.work.mkdir(parents=True)
        git(root, "init", "--quiet", "--bare", "-b", "main", str(self.bare))
        git(self.work, "init", "--quiet", "-b", "main")
        git(self.work, "remote", "add", "origin", str(self.bare))

    def commit(self, message: str, files: dict[str, str], remove: tuple[str, ...] = ()) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for name in remove:
            git(self.work, "rm", "--quiet", "--", name)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def push(self) -> None:
        git(self.work, "push", "--quiet", "--force", "origin", "--all")
        git(self.work, "push", "--quiet", "--force", "origin", "--tags")


def make_origin(root: Path) -> Origin:
    need_binary("git", "git")
    o = Origin(root)
    o.first = o.commit("first", {"index.php": "<?php echo 1;", "lib/a.php": "a"})
    git(o.work, "tag", "-a", "v1.0", "-m", "release 1.0")
    files = {"index.php": "<?php echo 2;", **{f"odd/{n}": n for n in HOSTILE}}
    o.second = o.commit("second: odd names", files)
    (o.work / "bin").mkdir()
    (o.work / "bin" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (o.work / "bin" / "run.sh").chmod(0o755)
    os.symlink("/etc/app/config.php", o.work / "config.php")
    os.symlink("lib/a.php", o.work / "a-link.php")
    o.third = o.commit("third: links and scripts", {}, remove=("lib/a.php",))
    git(o.work, "tag", "v1.1")  # lightweight
    git(o.work, "checkout", "--quiet", "-b", "feature/x")
    o.feature = o.commit("feature work", {"feature.txt": "f"})
    git(o.work, "checkout", "--quiet", "main")
    o.push()
    return o


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    return make_origin(tmp_path_factory.mktemp("origin"))


@pytest.fixture()
def mirror(origin: Origin, tmp_path: Path) -> GitMirror:
    m = GitMirror(tmp_path / "mirrors", str(origin.bare))
    m.sync()
    return m


def test_mirror_directory_name_is_readable_and_unique() -> None:
    a = mirror_name("https://git.example.com/team/web-app.git")
    b = mirror_name("https://git.example.com/other/web-app.git")
    assert a.startswith("web-app-") and b.startswith("web-app-") and a != b
    assert mirror_name("git@host:team/we b$(x).git").startswith("we_b_x-")
    assert "/" not in mirror_name("/srv/repos/../x/")


def test_resolve_tags_branches_and_shas(mirror: GitMirror, origin: Origin) -> None:
    o = origin
    assert mirror.resolve("v1.0") == o.first  # annotated, peeled
    assert mirror.resolve("v1.1") == o.third  # lightweight
    assert mirror.resolve("main") == o.third
    assert mirror.resolve("feature/x") == o.feature
    assert mirror.resolve("refs/tags/v1.0") == o.first
    assert mirror.resolve(o.second[:8]) == o.second
    assert mirror.resolve(o.second) == o.second


def test_unknown_ref_is_not_found_with_hint(mirror: GitMirror, origin: Origin) -> None:
    with pytest.raises(NotFoundError) as e:
        mirror.resolve("v9.9")
    assert str(e.value) == f"ref 'v9.9' not found in {origin.bare}"
    assert e.value.hint
    with pytest.raises(NotFoundError):
        mirror.resolve("deadbeef")


HOSTILE_REFS = [
    "v1; rm -rf /",
    "$(touch {tmp}/pwned)",
    "`touch {tmp}/pwned`",
    "--upload-pack=touch {tmp}/pwned",
    "-n",
    "../../etc",
    "v1..v2",
    "main@{1}",
    "@",
    "refs/heads/x.lock",
    "a//b",
    "/abs",
    "trailing/",
    "trailing.",
    ".hidden",
    "v1\nv2",
    "v1 v2",
    "tab\tref",
    "nul\x00",
    "ctl\x1b[31m",
    "v1|cat",
    "v1>out",
    "glob*",
    "q?",
    "br[0]",
    "x~1",
    "x^{tree}",
    "a:b",
    "back\\slash",
    "",
    "é",
    "x" * 300,
]


@pytest.mark.parametrize("template", HOSTILE_REFS)
def test_hostile_refs_are_refused_before_git_runs(
    template: str, mirror: GitMirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = template.replace("{tmp}", str(tmp_path))
    calls: list[object] = []

    def no_git(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("git must not run for a refused ref")

    monkeypatch.setattr(mirror_mod.local_processes, "run", no_git)
    monkeypatch.setattr(mirror_mod.local_processes, "start", no_git)
    with pytest.raises(InputError) as e:
        mirror.resolve(ref)
    assert repr(ref)[:40].rstrip("'") in str(e.value) or len(ref) > 255
    assert calls == []
    assert not (tmp_path / "pwned").exists()
    assert not list(tmp_path.glob("*pwned*"))


def test_hostile_refs_are_also_refused_by_the_builder() -> None:
    for ref in ("--upload-pack=x", "$(id)", "a b"):
        with pytest.raises(InputError):
            gitcmd.rev_parse_commit("/m.git", ref)


def test_resolve_does_not_treat_a_ref_as_an_option(mirror: GitMirror, origin: Origin) -> None:
    # '--end-of-options' keeps even a branch called like an option-ish name a revision
    git(origin.work, "branch", "v-1-dash")
    origin.push()
    mirror.sync()
    assert mirror.resolve("v-1-dash") == origin.third


def test_export_writes_tree_without_git_dir(mirror: GitMirror, origin: Origin, tmp_path: Path):
    dest = mirror.export(mirror.resolve("v1.1"), tmp_path / "build")
    assert not (dest / ".git").exists()
    assert (dest / "index.php").read_text() == "<?php echo 2;"
    assert not (dest / "lib" / "a.php").exists()
    for name in HOSTILE:
        assert (dest / "odd" / name).read_text() == name
    assert os.readlink(dest / "config.php") == "/etc/app/config.php"  # absolute link kept
    assert os.readlink(dest / "a-link.php") == "lib/a.php"
    assert os.access(dest / "bin" / "run.sh", os.X_OK)
    assert not (tmp_path / "PWNED").exists() and not (dest / "odd" / "PWNED").exists()
    # the export is exactly the commit's tree
    tree = set(
        git(origin.work, "ls-tree", "-r", "--name-only", "-z", origin.third).split("\x00")
    ) - {""}
    files = {p for p, e in build_manifest(dest).items() if e.kind != "dir"}
    assert files == tree


def test_export_refuses_non_empty_destination_and_bad_sha(mirror: GitMirror, tmp_path: Path):
    dest = tmp_path / "full"
    dest.mkdir()
    (dest / "x").write_text("x")
    with pytest.raises(InputError):
        mirror.export(mirror.resolve("main"), dest)
    with pytest.raises(InputError):
        mirror.export("HEAD; rm -rf /", tmp_path / "other")
    with pytest.raises(CommandFailed):
        mirror.export("0" * 40, tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_export_refuses_an_archive_escaping_dest(
    mirror: GitMirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git never produces such a tar; prove the extraction filter holds anyway
    import io
    import tarfile

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type = tarfile.SYMTYPE
        link.linkname = str(tmp_path / "outside")
        tar.addfile(link)
        data = b"owned"
        member = tarfile.TarInfo("escape/owned.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    (tmp_path / "outside").mkdir()
    script = tmp_path / "fake-archive.py"
    script.write_bytes(
        b"import sys\nsys.stdout.buffer.write(" + repr(evil.getvalue()).encode() + b")\n"
    )
    import sys

    monkeypatch.setattr(
        mirror_mod.gitcmd, "archive", lambda git_dir, sha: [sys.executable, str(script)]
    )
    with pytest.raises(InputError, match="unsafe path"):
        mirror.export("a" * 40, tmp_path / "dest")
    assert not (tmp_path / "outside" / "owned.txt").exists()
    assert not (tmp_path / "dest").exists()


def test_log_and_changed_files(mirror: GitMirror, origin: Origin) -> None:
    o = origin
    commits = mirror.log(o.first, o.third)
    assert [c.sha for c in commits] == [o.third, o.second]
    assert commits[0].subject == "third: links and scripts"
    assert commits[0].author == "Ada Lovelace"
    assert len(mirror.log(None, o.third, limit=2)) == 2
    assert mirror.log(o.third, o.third) == []
    changed = mirror.changed_files(o.second, o.third)
    assert changed == ["a-link.php", "bin/run.sh", "config.php", "lib/a.php"]
    everything = mirror.changed_files(None, o.first)
    assert everything == ["index.php", "lib/a.php"]
    with pytest.raises(InputError):
        mirror.log("HEAD~1", o.third)


def test_sync_fetches_new_moved_and_deleted_refs(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "own-origin")
    m = GitMirror(tmp_path / "mirrors", str(origin.bare))
    assert m.sync() == "clone"
    inode = (m.path / "objects").stat().st_ino
    git(origin.work, "checkout", "--quiet", "-b", "temp")
    temp_sha = origin.commit("temp", {"t.txt": "t"})
    git(origin.work, "tag", "-f", "v1.1")  # move a tag
    git(origin.work, "tag", "v2.0")
    origin.push()
    assert m.sync() == "fetch"
    assert (m.path / "objects").stat().st_ino == inode  # same mirror, not a re-clone
    assert m.resolve("temp") == temp_sha
    assert m.resolve("v1.1") == temp_sha
    assert m.resolve("v2.0") == temp_sha
    # delete the branch and tag in origin: --prune removes them from the mirror
    git(origin.work, "checkout", "--quiet", "main")
    git(origin.work, "push", "--quiet", "origin", "--delete", "temp", "v2.0")
    git(origin.work, "tag", "-d", "v2.0")
    git(origin.work, "branch", "-D", "temp")
    git(origin.work, "tag", "-f", "v1.1", origin.third)
    origin.push()
    m.sync()
    with pytest.raises(NotFoundError):
        m.resolve("temp")
    with pytest.raises(NotFoundError):
        m.resolve("v2.0")
    assert m.resolve("v1.1") == origin.third


def test_concurrent_syncs_clone_once(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_run = mirror_mod.local_processes.run
    lock = threading.Lock()
    active = [0]
    overlap = [False]

    def recording_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        verb = "clone" if "clone" in argv else "fetch" if "fetch" in argv else "other"
        with lock:
            seen.append(verb)
            active[0] += 1
            overlap[0] |= active[0] > 1
        try:
            return real_run(argv, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(mirror_mod.local_processes, "run", recording_run)
    mirrors = tmp_path / "mirrors"
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(GitMirror(mirrors, str(origin.bare)).sync())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == ["clone", "fetch", "fetch", "fetch", "fetch"]
    assert seen.count("clone") == 1 and not overlap[0]
    assert [p.name for p in mirrors.iterdir() if p.suffix == ".git"] == [
        mirror_name(str(origin.bare)) + ".git"
    ]


def test_failed_clone_leaves_nothing_behind(tmp_path: Path) -> None:
    m = GitMirror(tmp_path / "mirrors", str(tmp_path / "no-such-repo.git"))
    with pytest.raises(CommandFailed) as e:
        m.sync()
    assert "git clone" in str(e.value) and "exit 128" in str(e.value)
    assert e.value.stderr_tail
    assert not m.exists()
    assert [p.name for p in (tmp_path / "mirrors").iterdir()] == [m.lock_path.name]


def test_reading_before_sync_says_what_to_do(tmp_path: Path) -> None:
    m = GitMirror(tmp_path / "mirrors", "https://example.invalid/x.git")
    with pytest.raises(NotFoundError) as e:
        m.resolve("main")
    assert "sync" in (e.value.hint or "")


def test_credentials_never_appear_in_errors(tmp_path: Path) -> None:
    url = "https://deploy:s3cret-token@127.0.0.1:9/team/app.git"
    m = GitMirror(tmp_path / "mirrors", url, timeout=30)
    assert m.display_url == "https://***@127.0.0.1:9/team/app.git"
    with pytest.raises(QuaysideError) as e:
        m.sync()
    text = str(e.value) + " ".join(getattr(e.value, "command", None) or [])
    assert "s3cret-token" not in text


@pytest.mark.parametrize("url", ["", "-oProxyCommand=x", "ext::sh -c x", "a\nb", "tab\there"])
def test_bad_repo_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        GitMirror(tmp_path, url)


def test_argv_builders() -> None:
    base = ["git", "-c", "protocol.ext.allow=never", "--no-pager"]
    assert gitcmd.clone_mirror("https://h/x.git", "/m/x.git") == [
        *base,
        "clone",
        "--mirror",
        "--quiet",
        "--",
        "https://h/x.git",
        "/m/x.git",
    ]
    assert gitcmd.fetch_mirror("/m/x.git") == [
        *base,
        "--git-dir=/m/x.git",
        "fetch",
        "--prune",
        "--tags",
        "--force",
        "--quiet",
        "origin",
    ]
    assert gitcmd.rev_parse_commit("/m/x.git", "v1.2") == [
        *base,
        "--git-dir=/m/x.git",
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        "v1.2^{commit}",
    ]
    assert gitcmd.archive("/m/x.git", "a" * 40) == [
        *base,
        "--git-dir=/m/x.git",
        "archive",
        "--format=tar",
        "a" * 40,
    ]
    assert gitcmd.log("/m", "abcd", "ef01", 5)[-3:] == [
        "--format=%H%x00%an%x00%s",
        "abcd..ef01",
        "--",
    ]


def test_export_linked_updates_one_cached_tree_and_hard_links_it(
    mirror: GitMirror, origin: Origin, tmp_path: Path
) -> None:
    o = origin
    first = mirror.export_linked(o.second, tmp_path / "b1")
    assert first.previous is None and first.changed is None  # a fresh checkout: all new
    second = mirror.export_linked(o.third, tmp_path / "b2")
    assert second.previous == o.second
    assert second.changed == frozenset(mirror.changed_files(o.second, o.third))
    # the second export is exactly the commit's tree, like a plain export
    plain = mirror.export(o.third, tmp_path / "plain")
    assert build_manifest(tmp_path / "b2") == build_manifest(plain)
    # unchanged files are hard links of the cached tree; the first build dir keeps its content
    assert os.stat(tmp_path / "b2" / "index.php").st_nlink > 1
    assert (tmp_path / "b1" / "index.php").read_text() == "<?php echo 2;"
    assert build_manifest(tmp_path / "b1") == build_manifest(
        mirror.export(o.second, tmp_path / "p1")
    )
    with pytest.raises(InputError):
        mirror.export_linked(o.third, tmp_path / "b2")  # not empty
    with pytest.raises(InputError):
        mirror.export_linked("--upload-pack=x", tmp_path / "b3")


def test_a_lent_tree_is_the_cached_tree_itself_and_goes_back(
    mirror: GitMirror, origin: Origin, tmp_path: Path
) -> None:
    """``lend=True``: the build dir IS the mirror's tree (no copy); given back, the next
    export changes only what git changed. A tree lent while another export checked out a
    fresh one is not taken back."""
    o = origin
    b1 = tmp_path / "b1"
    first = mirror.export_linked(o.second, b1, lend=True)
    assert first.previous is None
    assert os.stat(b1 / "index.php").st_nlink == 1  # moved, not linked
    assert not (mirror.tree_cache / "work").exists()
    assert mirror.give_back(b1) and not b1.exists()
    assert not mirror.give_back(b1)  # once

    b2 = tmp_path / "b2"
    second = mirror.export_linked(o.third, b2, lend=True)
    assert second.previous == o.second
    assert second.changed == frozenset(mirror.changed_files(o.second, o.third))
    assert build_manifest(b2) == build_manifest(mirror.export(o.third, tmp_path / "plain"))
    # lent out: another export checks out a fresh tree, and b2 is not taken back
    third = mirror.export_linked(o.second, tmp_path / "b3")
    assert third.previous is None
    assert not mirror.give_back(b2) and b2.is_dir()
    assert not mirror.give_back(tmp_path / "never-lent")
    # the fresh tree serves the next export as usual
    fourth = mirror.export_linked(o.third, tmp_path / "b4")
    assert fourth.previous == o.second


def test_read_tree_builder_checks_the_commit() -> None:
    argv = gitcmd.read_tree("/m.git", "/w", "a" * 40)
    assert argv[-4:] == ["read-tree", "--reset", "-u", "a" * 40]
    assert "protocol.ext.allow=never" in argv
    with pytest.raises(InputError):
        gitcmd.read_tree("/m.git", "/w", "HEAD; rm -rf /")
