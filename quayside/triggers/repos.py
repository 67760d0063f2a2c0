"""Which project a git URL names, whatever its form: how a hook's repository, a task's
``GIT_URL`` and an app's ``repo`` are compared."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def repo_path(url: str) -> str:
    """``group/project`` of a git URL or path, lower case, without ``.git``.

    ``git@host:group/project.git``, ``https://host/group/project.git``, ``ssh://git@host/group/
    project`` and ``group/project`` all give ``group/project``; a local path gives its path.
    """
    text = url.strip()
    if "://" in text:
        text = urlsplit(text).path
    elif re.match(r"^[\w.-]+@[\w.-]+:", text):
        text = text.split(":", 1)[1]
    return text.strip("/").removesuffix(".git").lower()


def same_project(candidate: str, repo: str) -> bool:
    """Whether ``candidate`` (a URL or path) names the project ``repo`` (an app's repo) is:
    the same path, or the repo's path ending with ``/<candidate path>``
    (``https://gitlab.example.com/web/site.git`` ~ ``web/site``). Hosts are not compared."""
    wanted, path = repo_path(candidate), repo_path(repo)
    return bool(wanted) and (path == wanted or path.endswith("/" + wanted))
