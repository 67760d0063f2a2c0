"""What an approver of an image promotion reads: the digest and version promoted, from which
registry to which, what the target environment runs now, the commit range between the two
builds and the copy plan (blobs present at the target, to mount, to upload). Also the copy's
figures as the ledger records them."""

from __future__ import annotations

from typing import Any

from quayside.images.promote_target import PromoteChoice
from quayside.markdown_text import code, inline
from quayside.registry import CopyResult

SHORT = 12


def commit_range(choice: PromoteChoice) -> str:
    """``<running commit>..<promoted commit>`` (short), or what is unknown about it."""
    new = choice.commit[:SHORT] if choice.commit else None
    if choice.running is None:
        return f"{new} (nothing runs in {choice.to_env} yet)" if new else "unknown (no build)"
    old = choice.running_commit[:SHORT] if choice.running_commit else None
    if new is None or old is None:
        missing = "the promoted image's" if new is None else f"{choice.to_env}'s image's"
        return f"{old or '?'}..{new or '?'} (no build recorded for {missing} digest)"
    if old == new:
        return f"{new} (the same commit as what runs now)"
    return f"{old}..{new}"


def promote_markdown(choice: PromoteChoice, copy_summary: str, requested_by: str) -> str:
    """The approval gate's description (Markdown)."""
    now = choice.running
    runs = (
        f"{code(now.version)} ({code(now.digest)}, release #{now.release_id})"
        if now is not None
        else "nothing (no image release succeeded there yet)"
    )
    same = now is not None and now.digest == choice.digest
    lines = [
        f"## Promote {inline(choice.app)} from {inline(choice.from_env)} to "
        f"{inline(choice.to_env)}",
        "",
        f"- version: {code(choice.version)}",
        f"- digest: {code(choice.digest)}",
        f"- from: {code(str(choice.source))} ({inline(choice.from_env)})",
        f"- to: {code(str(choice.target))} ({inline(choice.to_env)})"
        + (f", tag {code(choice.tag)}" if choice.tag else ""),
        f"- runs now in {inline(choice.to_env)}: {runs}" + (" - the same digest" if same else ""),
        f"- commits: {code(commit_range(choice))}",
        f"- copy: {inline(copy_summary)}",
        f"- requested by: {inline(requested_by)}",
        "",
        f"After the copy (the digest verified at the target), {inline(choice.to_env)} runs it "
        "through an image release (its hosts, config and checks).",
    ]
    return "\n".join(lines) + "\n"


def copy_details(choice: PromoteChoice, result: CopyResult) -> dict[str, Any]:
    """The copy as the ledger records it (the ``promote`` detail)."""
    return {
        "from_env": choice.from_env,
        "to_env": choice.to_env,
        "digest": choice.digest,
        "version": choice.version,
        "source": str(choice.source),
        "target": str(choice.target),
        "tag": choice.tag,
        "blobs_present": len(result.present),
        "blobs_mounted": len(result.mounted),
        "blobs_uploaded": len(result.uploaded),
        "bytes_uploaded": result.bytes_uploaded,
        "manifests": len(result.manifests),
    }
