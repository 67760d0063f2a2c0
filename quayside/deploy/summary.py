"""Markdown for approvals and run artifacts (pure text, no I/O).

Every value in it comes from outside the template — app, env, version, requester, commit
subjects and authors, file names, host names — and goes through :mod:`quayside.markdown_text`,
so a commit subject or a file name is shown as written and adds no row, link or image.
"""

from __future__ import annotations

from collections.abc import Sequence

from quayside.markdown_text import cell, code, inline
from quayside.source.mirror import Commit


def _names(values: Sequence[str]) -> str:
    return ", ".join(inline(v) for v in values)


def approval_markdown(
    *,
    app: str,
    env: str,
    version: str,
    commit_sha: str,
    current_version: str | None,
    current_sha: str | None,
    commits: Sequence[Commit],
    changed_files: Sequence[str],
    hosts: Sequence[str],
    requested_by: str,
    file_limit: int = 30,
) -> str:
    """The approval request shown in the Prefect UI's resume dialog.

    >>> "web/prod" in approval_markdown(app="web", env="prod", version="v2", commit_sha="a"*40,
    ...     current_version=None, current_sha=None, commits=[], changed_files=[], hosts=["h"],
    ...     requested_by="al")
    True
    """
    span = (
        f"{code(current_sha[:12])} ({inline(current_version or 'unknown')}) → "
        f"{code(commit_sha[:12])}"
        if current_sha
        else f"first release: {code(commit_sha[:12])}"
    )
    lines = [
        f"## Deploy {inline(app)}/{inline(env)} to **{inline(version)}**",
        "",
        f"- requested by: **{inline(requested_by)}**",
        f"- commits: {span}",
        f"- hosts ({len(hosts)}): {_names(hosts)}",
        f"- files changed: {len(changed_files)}",
        "",
    ]
    if commits:
        lines += ["| commit | author | subject |", "| --- | --- | --- |"]
        lines += [
            f"| {code(c.sha[:12], in_table=True)} | {cell(c.author)} | {cell(c.subject)} |"
            for c in commits
        ]
        lines.append("")
    if changed_files:
        shown = [code(p) for p in changed_files[:file_limit]]
        more = len(changed_files) - file_limit
        lines.append("Changed: " + ", ".join(shown) + (f" … and {more} more" if more > 0 else ""))
    return "\n".join(lines)


def rollback_markdown(
    *,
    app: str,
    env: str,
    current: tuple[int, str | None, str | None],
    target: tuple[int, str | None, str | None],
    release_dir: str,
    hosts: Sequence[str],
    requested_by: str,
) -> str:
    """The approval request of a rollback: from which release to which, on which hosts.

    Args:
        current: (ledger id, version, commit sha) of the release the hosts run now.
        target: (ledger id, version, commit sha) of the release to roll back to.

    >>> "release 3" in rollback_markdown(app="web", env="prod", current=(5, "v2", "b" * 40),
    ...     target=(3, "v1", "a" * 40), release_dir="r1", hosts=["h"], requested_by="al")
    True
    """

    from quayside.ledger.environments import resume_command  # the ORM, only when it is needed

    def name(release: tuple[int, str | None, str | None]) -> str:
        sha = f" {code(release[2][:12])}" if release[2] else ""
        return f"**{inline(release[1] or '?')}** (release {release[0]}{sha})"

    return "\n".join(
        [
            f"## Roll back {inline(app)}/{inline(env)} to {inline(target[1] or '?')}",
            "",
            f"- requested by: **{inline(requested_by)}**",
            f"- from: {name(current)}",
            f"- to: {name(target)}, directory {code(release_dir)}",
            f"- hosts ({len(hosts)}): {_names(hosts)}",
            "",
            "Every host switches `current` back (restored from the artifact store where the "
            "release was pruned); automatic triggers of the app/env are paused afterwards, "
            f"until {code(resume_command(app, env))}.",
        ]
    )
