"""git argv builders for the source mirror, and the checks that run before any of them.

Every builder takes an already-checked value (``check_ref``, ``check_commit``, ``check_repo_url``)
and returns an argv list; nothing here runs git.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from quayside.errors import InputError

GIT = "git"

#: Options put before every subcommand: no pager, and the ``ext::`` transport (which runs
#: commands) off whatever the configuration says.
_BASE = ["-c", "protocol.ext.allow=never", "--no-pager"]

_REF_CHARS = re.compile(r"[A-Za-z0-9._/+@-]+")
_COMMIT = re.compile(r"[0-9a-f]{4,64}")
_FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MAX_REF_LENGTH = 255


def check_ref(ref: str) -> str:
    """Return ``ref`` (a tag, branch or commit sha) if it is safe to hand to git, else raise
    ``InputError`` naming it and the rule it breaks.

    Stricter than ``git check-ref-format``: only letters, digits and ``. _ / + @ -``; no leading
    ``-`` or ``/``, no ``..``, ``//``, ``@{``, no component starting with ``.`` or ending with
    ``.lock``, no trailing ``/`` or ``.``.
    """

    def refuse(why: str) -> InputError:
        return InputError(
            f"invalid git ref {ref!r}: {why}",
            hint="give a tag, branch or commit sha, e.g. v1.4.2, main or 3f2a9c1",
        )

    if not isinstance(ref, str) or not ref:
        raise refuse("it is empty")
    if len(ref) > MAX_REF_LENGTH:
        raise refuse(f"longer than {MAX_REF_LENGTH} characters")
    if any(unicodedata.category(c).startswith(("C", "Z")) for c in ref):
        raise refuse("it contains whitespace or control characters")
    if not _REF_CHARS.fullmatch(ref):
        bad = sorted({c for c in ref if not _REF_CHARS.fullmatch(c)})
        raise refuse(f"character(s) {''.join(bad)!r} are not allowed")
    if ref.startswith("-"):
        raise refuse("it starts with '-'")
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise refuse("it has an empty path component")
    if ".." in ref:
        raise refuse("it contains '..'")
    if ref == "@" or "@{" in ref:
        raise refuse("'@' alone or '@{' is reflog syntax")
    if ref.endswith("."):
        raise refuse("it ends with '.'")
    for part in ref.split("/"):
        if part.startswith("."):
            raise refuse("a component starts with '.'")
        if part.endswith(".lock"):
            raise refuse("a component ends with '.lock'")
    return ref


def check_commit(sha: str, *, full: bool = False) -> str:
    """Return ``sha`` if it is a lowercase hex commit id (4-64 digits, or exactly 40/64 when
    ``full``), else raise ``InputError``."""
    pattern = _FULL_COMMIT if full else _COMMIT
    if not isinstance(sha, str) or not pattern.fullmatch(sha):
        raise InputError(f"invalid commit sha {sha!r}", hint="use the sha that resolve() returned")
    return sha


def check_repo_url(url: str) -> str:
    """Return ``url`` if it can be given to ``git clone`` as a repository, else raise."""
    if not isinstance(url, str) or not url.strip():
        raise InputError("repository URL is empty")
    if url.startswith("-"):
        raise InputError(f"repository URL {redact_url(url)!r} starts with '-'")
    if any(unicodedata.category(c).startswith("C") for c in url):
        raise InputError(f"repository URL {redact_url(url)!r} contains control characters")
    if url.lower().startswith(("ext::", "fd::")):
        raise InputError(f"repository URL {redact_url(url)!r} uses a transport that runs commands")
    return url


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PLAIN_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_HEX_SECRET = re.compile(r"[0-9a-f]{16,}")
_TOKEN_PREFIXES = (
    "glpat-",
    "gldt-",
    "glptt-",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
)
REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` with its credentials replaced by ``***``, for messages and logs.

    Scheme URLs lose their whole userinfo, user name included: ``https://user:tok@host/x``
    and ``https://<token>@host/x`` both become ``https://***@host/x`` (a bare user name in a
    scheme URL is often a token). Everything between ``://`` and the *last* ``@`` counts as
    userinfo, so a password holding ``@``, ``/``, ``?`` or ``#`` (percent-encoded or not) is
    hidden too; a URL whose path contains ``@`` loses more than its userinfo, never a secret.

    Without a scheme (scp-like ``user@host:path``, or anything else with an ``@``) a plain
    login name is kept: ``git@host:group/app.git`` is unchanged, since SSH never carries a
    secret in the user name and the name helps to debug access. Anything else before the last
    ``@`` -- a ``:`` (password), upper case, a known token prefix (``glpat-``, ``ghp_``, ...),
    16 or more hex digits, more than 32 characters -- is replaced: ``***@host:path``.

    Args:
        url: a repository URL as configured or typed (not checked).

    Returns:
        The URL to show.
    """
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@", start)
    if at < 0:
        return url
    userinfo = url[start:at]
    if scheme is None and _plain_user(userinfo):
        return url
    return f"{url[:start]}{REDACTED}{url[at:]}"


def _plain_user(userinfo: str) -> bool:
    return (
        _PLAIN_USER.fullmatch(userinfo) is not None
        and not userinfo.startswith(_TOKEN_PREFIXES)
        and _HEX_SECRET.search(userinfo) is None
    )


def _git(git_dir: Path | str, *args: str) -> list[str]:
    return [GIT, *_BASE, f"--git-dir={git_dir}", *args]


def clone_mirror(url: str, dest: Path | str) -> list[str]:
    """``git clone --mirror -- <url> <dest>``: a bare mirror of every ref."""
    return [GIT, *_BASE, "clone", "--mirror", "--quiet", "--", check_repo_url(url), str(dest)]


def fetch_mirror(git_dir: Path | str) -> list[str]:
    """Update a mirror: prune deleted refs, fetch tags (moved tags are forced, like branches)."""
    return _git(git_dir, "fetch", "--prune", "--tags", "--force", "--quiet", "origin")


def rev_parse_commit(git_dir: Path | str, ref: str) -> list[str]:
    """The full sha of the commit ``ref`` names, annotated tags peeled (``<ref>^{commit}``)."""
    return _git(
        git_dir,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{check_ref(ref)}^{{commit}}",
    )


def list_tags(git_dir: Path | str) -> list[str]:
    """Tag names, one a line, newest first: by creation date (the tagger's for an annotated
    tag, the commit's for a lightweight one), then by version order (``v1.10`` after ``v1.9``)."""
    return _git(
        git_dir,
        "for-each-ref",
        "--sort=-v:refname",
        "--sort=-creatordate",
        "--format=%(refname:strip=2)",
        "refs/tags/",
    )


def archive(git_dir: Path | str, sha: str) -> list[str]:
    """A tar stream of the tree at commit ``sha`` on stdout (no .git directory)."""
    return _git(git_dir, "archive", "--format=tar", check_commit(sha))


def read_tree(git_dir: Path | str, work_tree: Path | str, sha: str) -> list[str]:
    """Make ``work_tree`` hold the tree at commit ``sha``, rewriting only the files that differ
    from the index (``GIT_INDEX_FILE`` names the index). ctimes are not trusted (hard links
    change them, not content); symlinks stay symlinks; no fsmonitor."""
    return [
        GIT,
        *_BASE,
        "-c",
        "core.trustctime=false",
        "-c",
        "core.symlinks=true",
        "-c",
        "core.fsmonitor=false",
        f"--git-dir={git_dir}",
        f"--work-tree={work_tree}",
        "read-tree",
        "--reset",
        "-u",
        check_commit(sha),
    ]


def log(git_dir: Path | str, old: str | None, new: str, limit: int = 20) -> list[str]:
    """Commits in ``new`` not in ``old`` (newest first), NUL-separated ``sha, author, subject``."""
    if limit < 1:
        raise InputError(f"log limit must be at least 1, got {limit}")
    span = f"{check_commit(old)}..{check_commit(new)}" if old else check_commit(new)
    return _git(
        git_dir, "log", "-z", f"--max-count={limit}", "--format=%H%x00%an%x00%s", span, "--"
    )


def changed_files(git_dir: Path | str, old: str | None, new: str) -> list[str]:
    """NUL-separated paths that differ between commits ``old`` and ``new`` (all of ``new``'s
    files when ``old`` is None)."""
    if old is None:
        return _git(git_dir, "ls-tree", "-r", "-z", "--name-only", check_commit(new), "--")
    return _git(
        git_dir,
        "diff",
        "--name-only",
        "-z",
        "--no-renames",
        "--no-ext-diff",
        "--no-textconv",
        check_commit(old),
        check_commit(new),
        "--",
    )
