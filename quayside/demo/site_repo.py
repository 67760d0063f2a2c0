"""The demo's sample git repository: a tiny static site in two versions, tagged ``v1``, then
``v2`` (also ``qa-1`` and ``release-1``, the names the demo's tag rules send to test and prod).
Plain files only, so deploying it needs nothing installed.

The repository is bare (``QUAYSIDE_HOME/demo/site.git``): clone it, change the site, tag and
push to try your own release. Git runs through the local executor with a fixed identity and
without the user's or the system's git configuration (no signing, no hooks).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from quayside.errors import QuaysideError
from quayside.executors.local import LocalExecutor, login_env

#: the tags of each version, in commit order
VERSION_TAGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("v1", ("v1",)),
    ("v2", ("v2", "qa-1", "release-1")),
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Quayside demo",
    "GIT_AUTHOR_EMAIL": "demo@quayside.invalid",
    "GIT_COMMITTER_NAME": "Quayside demo",
    "GIT_COMMITTER_EMAIL": "demo@quayside.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}

_STYLE = """body { font-family: sans-serif; max-width: 40em; margin: 3em auto; }
.version { font-size: 2em; color: #0a5; }
"""

_README = """# The Quayside demo site

Deployed by the Quayside demo (`quayside up` wrote it on its first start). Try a release of
your own:

    git clone <QUAYSIDE_HOME>/demo/site.git && cd site
    echo '<p>mine</p>' >> index.html && git commit -am 'my change' && git tag v3
    git push origin main v3

then deploy `v3` of app `demo` from the Prefect UI (git-deploy) or `quayside deploy demo test v3`.
"""


def _page(version: str, extra: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<title>Quayside demo</title>\n<link rel="stylesheet" href="style.css">\n</head>\n'
        f'<body>\n<h1>Quayside demo</h1>\n<p class="version">{version}</p>\n{extra}'
        "</body>\n</html>\n"
    )


def site_files(version: str) -> dict[str, str]:
    """The site's files at ``version`` (``v1`` or ``v2``): v2 changes the page and adds one;
    the stylesheet stays, so a deploy of v2 over v1 sends only what changed."""
    files = {"index.html": _page(version), "style.css": _STYLE, "README.md": _README}
    if version == "v2":
        files["index.html"] = _page(version, '<p><a href="about.html">about</a></p>\n')
        files["about.html"] = _page(version, "<p>Released with Quayside.</p>\n")
    return files


def git(*args: str) -> list[str]:
    """``git`` with the options every demo git command gets: no signing, no hooks."""
    return [
        "git",
        "-c", "commit.gpgsign=false",
        "-c", "tag.gpgsign=false",
        "-c", "core.hooksPath=/dev/null",
        *args,
    ]  # fmt: skip


def build_commands(work: Path, bare: Path) -> list[tuple[str | None, list[str]]]:
    """Per step: the version whose files are written first (or None), and the git argv.
    A work tree ``work`` gets the commits and tags, then everything is pushed to ``bare``."""
    steps: list[tuple[str | None, list[str]]] = [
        (None, git("init", "-q", "-b", "main", str(work))),
        (None, git("init", "-q", "--bare", "-b", "main", str(bare))),
    ]
    for version, tags in VERSION_TAGS:
        steps.append((version, git("-C", str(work), "add", "-A")))
        steps.append((None, git("-C", str(work), "commit", "-q", "-m", f"demo site {version}")))
        steps.extend((None, git("-C", str(work), "tag", tag)) for tag in tags)
    steps.append((None, git("-C", str(work), "push", "-q", str(bare), "main", "--tags")))
    return steps


def _write(work: Path, files: dict[str, str], previous: Sequence[str]) -> None:
    for name in previous:
        if name not in files:
            (work / name).unlink(missing_ok=True)
    for name, content in files.items():
        (work / name).write_text(content, encoding="utf-8")


def create_site_repo(dest: Path) -> bool:
    """Create the bare demo repository at ``dest`` unless it exists.

    Returns:
        True if it was created now, False if it was there already (left as it is).

    Raises:
        QuaysideError: git is missing or failed (the message names the command).
    """
    if dest.exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.with_name(f".{dest.name}.work")
    staging = dest.with_name(f".{dest.name}.new")
    for leftover in (work, staging):  # from an interrupted earlier attempt
        shutil.rmtree(leftover, ignore_errors=True)
    executor = LocalExecutor("demo", base_env={**login_env(os.environ), **GIT_ENV})
    written: list[str] = []
    try:
        for version, argv in build_commands(work, staging):
            if version is not None:
                files = site_files(version)
                _write(work, files, written)
                written = list(files)
            executor.run(argv, timeout=60)
        staging.rename(dest)
    except QuaysideError as e:
        raise QuaysideError(
            f"cannot create the demo repository {dest}: {e}",
            hint="is git installed? (`make test` installs it; Debian: apt-get install git)",
        ) from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return True
