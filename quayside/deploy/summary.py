"""Markdown for approvals and run artifacts (pure text, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

from quayside.source.mirror import Commit


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200]


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
        f"`{current_sha[:12]}` ({current_version or 'unknown'}) → `{commit_sha[:12]}`"
        if current_sha
        else f"first release: `{commit_sha[:12]}`"
    )
    lines = [
        f"## Deploy {app}/{env} to **{version}**",
        "",
        f"- requested by: **{requested_by}**",
        f"- commits: {span}",
        f"- hosts ({len(hosts)}): {', '.join(hosts)}",
        f"- files changed: {len(changed_files)}",
        "",
    ]
    if commits:
        lines += ["| commit | author | subject |", "| --- | --- | --- |"]
        lines += [f"| `{c.sha[:12]}` | {_cell(c.author)} | {_cell(c.subject)} |" for c in commits]
        lines.append("")
    if changed_files:
        shown = [f"`{_cell(p)}`" for p in changed_files[:file_limit]]
        more = len(changed_files) - file_limit
        lines.append("Changed: " + ", ".join(shown) + (f" … and {more} more" if more > 0 else ""))
    return "\n".join(lines)


def table_markdown(title: str, rows: Sequence[dict[str, object]]) -> str:
    """A Markdown table of ``rows`` (keys of the first row are the columns)."""
    if not rows:
        return f"# {title}\n\n(no hosts)"
    cols = list(rows[0])
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_cell(str(r.get(c, ""))) for c in cols) + " |" for r in rows]
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

    def name(release: tuple[int, str | None, str | None]) -> str:
        sha = f" `{release[2][:12]}`" if release[2] else ""
        return f"**{_cell(release[1] or '?')}** (release {release[0]}{sha})"

    return "\n".join(
        [
            f"## Roll back {app}/{env} to {_cell(target[1] or '?')}",
            "",
            f"- requested by: **{requested_by}**",
            f"- from: {name(current)}",
            f"- to: {name(target)}, directory `{_cell(release_dir)}`",
            f"- hosts ({len(hosts)}): {', '.join(hosts)}",
            "",
            "Every host switches `current` back (restored from the artifact store where the "
            "release was pruned); automatic triggers of the app/env are paused afterwards.",
        ]
    )
