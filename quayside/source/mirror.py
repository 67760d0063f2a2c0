"""One bare git mirror per repository: sync, resolve refs, export trees, summarise changes.

The mirror lives in ``<mirrors_dir>/<name>-<hash>.git``; syncs of the same mirror are serialised
with an exclusive ``flock`` on ``<name>-<hash>.lock`` (reads take a shared lock), so many runs
on one worker share one clone and never see a half-fetched mirror.

git runs through the local process runner (:mod:`quayside.executors.local_processes`): a run
killed outright takes its git with it (SIGTERM, on which git removes its lock files).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from quayside.commands import git as gitcmd
from quayside.errors import (
    CommandFailed,
    CommandTimeout,
    InputError,
    LockHeldError,
    NotFoundError,
    QuaysideError,
)
from quayside.executors import local_processes

HOST = "localhost"


@dataclass(frozen=True)
class Checkout:
    """What :meth:`GitMirror.export_linked` did: the commit its cached tree held before, and
    the paths that differ from it (None: unknown, treat every path as new)."""

    previous: str | None
    changed: frozenset[str] | None


@dataclass(frozen=True)
class Commit:
    """One line of an approval summary."""

    sha: str
    subject: str
    author: str


def mirror_name(repo_url: str) -> str:
    """Directory name for ``repo_url``'s mirror: a readable part plus a hash of the whole URL.

    >>> mirror_name("https://git.example.com/team/web-app.git")[:8]
    'web-app-'
    """
    url = gitcmd.check_repo_url(repo_url).rstrip("/")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    last = re.split(r"[/:]", url)[-1] or "repo"
    last = last.removesuffix(".git")
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", last).strip("._-")[:40] or "repo"
    return f"{readable}-{digest}"


#: ``TarInfo.replace`` values meaning "do not chown" (git archive says root:root).
_NO_OWNER: dict[str, Any] = {"uid": None, "gid": None, "uname": None, "gname": None}


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, except that symlink targets are kept as they are in the repo
    (a release may legitimately link to ``/etc/app.conf``); member names must still stay inside
    ``dest`` and nothing is extracted through a symlink."""
    if member.issym():
        kept = tarfile.tar_filter(member, dest)
        return kept.replace(**_NO_OWNER, deep=False)
    return tarfile.data_filter(member, dest)


class GitMirror:
    """A bare mirror of ``repo_url`` under ``mirrors_dir``.

    Args:
        mirrors_dir: directory holding all mirrors (created if missing).
        repo_url: anything ``git clone`` accepts (URL, scp-like ``user@host:path``, local path).
        timeout: seconds for a clone or fetch.
        local_timeout: seconds for local git commands (rev-parse, log, archive).
        lock_timeout: seconds to wait for another process's sync of the same mirror.

    Example:
        >>> m = GitMirror(Path("/var/lib/quayside/mirrors"), "https://git.example.com/web.git")
        >>> m.sync(); sha = m.resolve("v1.4.2"); m.export(sha, Path("/tmp/build"))
    """

    def __init__(
        self,
        mirrors_dir: Path,
        repo_url: str,
        *,
        timeout: float = 600.0,
        local_timeout: float = 120.0,
        lock_timeout: float = 900.0,
    ) -> None:
        self.repo_url = gitcmd.check_repo_url(repo_url)
        self.mirrors_dir = Path(mirrors_dir)
        name = mirror_name(repo_url)
        self.path = self.mirrors_dir / f"{name}.git"
        self.lock_path = self.mirrors_dir / f"{name}.lock"
        self.timeout = timeout
        self.local_timeout = local_timeout
        self.lock_timeout = lock_timeout

    # -- public API -----------------------------------------------------------------------

    @property
    def display_url(self) -> str:
        """The repository URL with any password replaced by ``***``."""
        return gitcmd.redact_url(self.repo_url)

    @property
    def tree_cache(self) -> Path:
        """The directory of the checked-out tree :meth:`export_linked` keeps up to date."""
        return self.path.with_name(self.path.name.removesuffix(".git") + ".tree")

    def exists(self) -> bool:
        """True once a sync has completed at least once."""
        return (self.path / "HEAD").is_file()

    def sync(self) -> str:
        """Clone the mirror if absent, else fetch (``--prune --tags``). Returns ``"clone"`` or
        ``"fetch"``.

        Raises:
            CommandFailed: git failed (unreachable remote, auth, not a repository); the message
                carries the stderr tail.
            CommandTimeout: past ``timeout`` seconds.
            LockHeldError: another sync held the mirror's lock past ``lock_timeout``.
        """
        self.mirrors_dir.mkdir(parents=True, exist_ok=True)
        with self._lock(exclusive=True):
            if self.exists():
                self._git(gitcmd.fetch_mirror(self.path), what="fetch", timeout=self.timeout)
                return "fetch"
            # clone next to the final path and rename, so a killed clone never looks complete
            if self.path.exists():
                shutil.rmtree(self.path)
            tmp = Path(tempfile.mkdtemp(prefix=self.path.name + ".tmp-", dir=self.mirrors_dir))
            try:
                self._git(
                    gitcmd.clone_mirror(self.repo_url, tmp / "m.git"),
                    what="clone",
                    timeout=self.timeout,
                    hint="check the repository URL and that this worker can reach and read it",
                )
                os.rename(tmp / "m.git", self.path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return "clone"

    def resolve(self, ref: str) -> str:
        """The full commit sha that ``ref`` (tag, branch or possibly abbreviated sha) names;
        annotated tags are peeled to their commit.

        Raises:
            InputError: ``ref`` is not a safe ref name (checked before git runs).
            NotFoundError: no such ref (or it does not name a commit) in the mirror.
        """
        gitcmd.check_ref(ref)
        self._require()
        with self._lock(exclusive=False):
            result = self._git(
                gitcmd.rev_parse_commit(self.path, ref), what="rev-parse", check=False
            )
        sha = result.stdout.strip()
        if result.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
            raise NotFoundError(
                f"ref {ref!r} not found in {self.display_url}",
                hint="push the tag or branch, or check its spelling (git ls-remote lists refs)",
            )
        return sha

    def tags(self) -> list[str]:
        """The mirror's tag names, newest first (creation date, then version order).

        Raises:
            NotFoundError: the mirror was never synced.
            CommandFailed / CommandTimeout: git failed.
        """
        self._require()
        with self._lock(exclusive=False):
            out = self._git(gitcmd.list_tags(self.path), what="for-each-ref").stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def export(self, sha: str, dest: Path) -> Path:
        """Write the tree at commit ``sha`` into ``dest`` (created; must be empty or absent),
        without a .git directory. Returns ``dest``.

        Raises:
            InputError: ``sha`` is not a commit id, ``dest`` is not empty, or the archive holds
                a member that would land outside ``dest``.
            CommandFailed / CommandTimeout: ``git archive`` failed or took too long.
        """
        gitcmd.check_commit(sha)
        self._require()
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise InputError(f"export destination {str(dest)!r} exists and is not empty")
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock(exclusive=False):
                self._extract_archive(sha, dest)
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                for child in dest.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            raise
        return dest

    def export_linked(self, sha: str, dest: Path, *, lend: bool = False) -> Checkout:
        """Like :meth:`export`, but fast for the next commit of a series: the mirror keeps one
        checked-out tree (``<name>.tree/``, updated by git with only the files that differ
        from the commit it held) and ``dest`` becomes a hard-link copy of it (``cp -al``).

        With ``lend``, ``dest`` becomes that tree itself (renamed, no copy): the mirror has
        none until :meth:`give_back` returns it, and an export meanwhile checks out a fresh
        one. Hard links are the fallback (another file system, say).

        ``dest``'s files may share their inodes with the cached tree: they must never be
        written in place (replace a file by unlinking it first), and a lent tree goes back
        with only the files git put there. Use :meth:`export` when a build will run in
        ``dest``. git itself refuses unsafe paths (``..``, ``.git``, paths through a
        symlink). Falls back to :meth:`export` if the cached tree cannot be used.

        Returns:
            The commit the cached tree held before (None for a fresh checkout) and the paths
            that differ between it and ``sha`` (what a manifest must look at again).

        Raises:
            InputError: ``sha`` is not a commit id or ``dest`` is not empty.
            CommandFailed / CommandTimeout: git failed.
        """
        gitcmd.check_commit(sha)
        self._require()
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise InputError(f"export destination {str(dest)!r} exists and is not empty")
        cache = self.tree_cache
        work, index, head = cache / "work", cache / "index", cache / "HEAD"
        try:
            with self._lock(exclusive=True):
                previous: str | None = None
                if work.is_dir() and index.is_file() and head.is_file():
                    previous = head.read_text().strip() or None
                if previous is None:
                    shutil.rmtree(cache, ignore_errors=True)
                    work.mkdir(parents=True)
                head.unlink(missing_ok=True)  # a killed update leaves no usable cache
                changed: frozenset[str] | None = None
                if previous is not None and previous != sha:
                    out = self._git(gitcmd.changed_files(self.path, previous, sha), what="diff")
                    changed = frozenset(p for p in out.stdout.split("\x00") if p)
                elif previous == sha:
                    changed = frozenset()
                self._read_tree(sha, work, index)
                if not (lend and self._lend(work, dest, sha)):
                    head.write_text(sha + "\n")
                    self._link_copy(work, dest, sha)
        except (CommandFailed, CommandTimeout, OSError):
            shutil.rmtree(cache, ignore_errors=True)
            if dest.exists():
                shutil.rmtree(dest, ignore_errors=True)
            self.export(sha, dest)
            return Checkout(None, None)
        return Checkout(previous if changed is not None else None, changed)

    def give_back(self, dest: Path) -> bool:
        """Make the tree :meth:`export_linked` lent as ``dest`` the mirror's cached tree again
        (renamed back). False if ``dest`` is not what the mirror lent (it checked out a fresh
        tree since, or ``dest`` was never lent): the caller deletes ``dest`` then."""
        cache = self.tree_cache
        work, index, head, lent = cache / "work", cache / "index", cache / "HEAD", cache / "LENT"
        with self._lock(exclusive=True):
            try:
                sha, where = lent.read_text().splitlines()[:2]
            except (OSError, ValueError):
                return False
            if where != str(dest) or work.exists() or not index.is_file():
                return False
            try:
                os.rename(dest, work)
            except OSError:
                return False
            lent.unlink()
            head.write_text(sha + "\n")
            return True

    def _lend(self, work: Path, dest: Path, sha: str) -> bool:
        """Rename the cached tree ``work`` (at ``sha``) to ``dest``; False if it cannot be."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(work, dest)  # onto an absent or empty directory
        except OSError:
            return False
        (work.parent / "LENT").write_text(f"{sha}\n{dest}\n")
        return True

    def _link_copy(self, work: Path, dest: Path, sha: str) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        copied = local_processes.run(
            ["cp", "-a", "-l", "-T", "--", str(work), str(dest)], timeout=self.local_timeout
        )
        if copied.returncode != 0:
            raise CommandFailed(
                HOST,
                f"cannot link the tree of {sha[:12]} into {str(dest)!r}",
                command=copied.args,
                exit_code=copied.returncode,
                stderr=copied.stderr,
            )

    def _read_tree(self, sha: str, work: Path, index: Path) -> None:
        """Make ``work`` hold the tree at ``sha`` (git rewrites only files that differ; a
        rewritten file is a new inode, so hard links to the old one keep the old content)."""
        self._git(
            gitcmd.read_tree(self.path, work, sha),
            what=f"read-tree {sha[:12]}",
            env={"GIT_INDEX_FILE": str(index)},
            umask=0o022,  # the modes an export gives (group/other cannot write)
        )

    def log(self, old_sha: str | None, new_sha: str, limit: int = 20) -> list[Commit]:
        """Commits reachable from ``new_sha`` but not ``old_sha`` (newest first, at most
        ``limit``): what an approval summary lists."""
        self._require()
        with self._lock(exclusive=False):
            out = self._git(gitcmd.log(self.path, old_sha, new_sha, limit), what="log").stdout
        fields = out.strip("\n\x00").split("\x00") if out.strip("\n\x00") else []
        commits = []
        for i in range(0, len(fields) - 2, 3):
            commits.append(
                Commit(sha=fields[i].strip(), author=fields[i + 1], subject=fields[i + 2])
            )
        return commits

    def changed_files(self, old_sha: str | None, new_sha: str) -> list[str]:
        """Sorted paths that differ between two commits (every file when ``old_sha`` is None)."""
        self._require()
        with self._lock(exclusive=False):
            out = self._git(gitcmd.changed_files(self.path, old_sha, new_sha), what="diff").stdout
        return sorted(p for p in out.split("\x00") if p)

    # -- internals ------------------------------------------------------------------------

    def _require(self) -> None:
        if not self.exists():
            raise NotFoundError(
                f"no mirror of {self.display_url} yet", hint="call sync() before reading from it"
            )

    @contextlib.contextmanager
    def _lock(self, *, exclusive: bool) -> Iterator[None]:
        self.mirrors_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.01
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockHeldError(
                            f"the mirror of {self.display_url} is still being synced by another "
                            f"process after {self.lock_timeout:.0f}s",
                            hint=f"check for a stuck git process; lock file {self.lock_path}",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_PAGER="cat")
        env.pop("GIT_DIR", None)
        env.pop("GIT_WORK_TREE", None)
        return env

    def _redact(self, text: str) -> str:
        return text.replace(self.repo_url, self.display_url) if text else text

    def _shown(self, argv: Sequence[str]) -> list[str]:
        return [self._redact(a) for a in argv]

    def _git(
        self,
        argv: list[str],
        *,
        what: str,
        timeout: float | None = None,
        check: bool = True,
        hint: str | None = None,
        env: Mapping[str, str] | None = None,
        umask: int = -1,
    ) -> subprocess.CompletedProcess[str]:
        limit = timeout if timeout is not None else self.local_timeout
        try:
            result = local_processes.run(
                argv,
                env={**self._env(), **(env or {})},
                timeout=limit,
                umask=umask,
                death_signal=signal.SIGTERM,  # git removes its lock files on SIGTERM
            )
        except FileNotFoundError as e:
            raise QuaysideError(
                "git is not installed on this worker", hint="install git (Debian package git)"
            ) from e
        except subprocess.TimeoutExpired as e:
            stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else ""
            raise CommandTimeout(
                HOST,
                f"git {what} of {self.display_url} took longer than {limit:.0f}s",
                command=self._shown(argv),
                stderr=self._redact(stderr or ""),
            ) from e
        if check and result.returncode != 0:
            raise CommandFailed(
                HOST,
                f"git {what} of {self.display_url} failed",
                command=self._shown(argv),
                exit_code=result.returncode,
                stderr=self._redact(result.stderr),
                hint=hint,
            )
        return result

    def _extract_archive(self, sha: str, dest: Path) -> None:
        argv = gitcmd.archive(self.path, sha)
        with tempfile.TemporaryFile() as err:
            try:
                proc = local_processes.start(
                    argv,
                    stdout=local_processes.PIPE,
                    stderr=err,
                    env=self._env(),
                    stdin=local_processes.DEVNULL,
                )
            except FileNotFoundError as e:
                raise QuaysideError(
                    "git is not installed on this worker", hint="install git (Debian package git)"
                ) from e
            timed_out = threading.Event()

            def kill() -> None:
                timed_out.set()
                proc.kill()

            timer = threading.Timer(self.local_timeout, kill)
            timer.start()
            failure: BaseException | None = None
            try:
                stream: IO[bytes] | None = proc.stdout
                assert stream is not None
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    tar.extractall(dest, filter=_safe_member)
            except (tarfile.FilterError, tarfile.TarError, OSError) as e:
                failure = e
                proc.kill()
            finally:
                timer.cancel()
                if proc.stdout is not None:
                    proc.stdout.close()
                code = proc.wait()
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if timed_out.is_set():
            raise CommandTimeout(
                HOST,
                f"git archive {sha[:12]} of {self.display_url} took longer than "
                f"{self.local_timeout:.0f}s",
                command=argv,
                stderr=stderr,
            )
        if isinstance(failure, tarfile.FilterError):
            raise InputError(
                f"commit {sha[:12]} of {self.display_url} has an unsafe path: {failure}"
            ) from failure
        killed_by_us = failure is not None and code == -signal.SIGKILL
        if code != 0 and not killed_by_us:
            raise CommandFailed(
                HOST,
                f"git archive {sha[:12]} of {self.display_url} failed",
                command=argv,
                exit_code=code,
                stderr=self._redact(stderr),
            )
        if failure is not None:
            raise QuaysideError(
                f"could not unpack commit {sha[:12]} into {str(dest)!r}: {failure}"
            ) from failure
