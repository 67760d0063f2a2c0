"""Unified diffs between config versions (what reviewers and approvers read)."""

from __future__ import annotations

import difflib


def unified(before: str, after: str, before_name: str, after_name: str, context: int = 3) -> str:
    """A unified diff of two texts; empty when they are equal. A missing final newline is
    marked as ``diff`` does, so it never hides a change."""
    a = before.splitlines(keepends=True)
    b = after.splitlines(keepends=True)
    lines = []
    for line in difflib.unified_diff(a, b, before_name, after_name, n=context):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        lines.append(line)
    return "".join(lines)
