"""A side-by-side diff of two versions, as rows for a template to lay out in a table.

Built here rather than with ``difflib.HtmlDiff`` so that the page's template escapes every
line itself (autoescape), and no HTML is ever assembled from file content in Python.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

RowKind = Literal["same", "changed", "removed", "added", "skipped"]
CONTEXT = 3


@dataclass(frozen=True)
class DiffRow:
    """One row: the left line (number and text) and the right line, and what changed.

    A ``skipped`` row stands for unchanged lines left out (``left_text`` says how many).
    """

    kind: RowKind
    left_no: int | None
    left_text: str
    right_no: int | None
    right_text: str


def side_by_side(before: str, after: str, context: int = CONTEXT) -> list[DiffRow]:
    """The rows comparing ``before`` (left) with ``after`` (right); unchanged stretches longer
    than ``2 * context`` lines are folded into one ``skipped`` row. Empty when equal."""
    a, b = before.splitlines(), after.splitlines()
    if a == b:  # equal, or only the final newline differs: never hide that
        return (
            [] if before == after else [DiffRow("changed", None, _end(before), None, _end(after))]
        )
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(_equal(a, i1, i2, j1, context, first=i1 == 0, last=i2 == len(a)))
            continue
        left, right = a[i1:i2], b[j1:j2]
        for k in range(max(len(left), len(right))):
            has_left, has_right = k < len(left), k < len(right)
            kind: RowKind = (
                "changed" if has_left and has_right else "removed" if has_left else "added"
            )
            rows.append(
                DiffRow(
                    kind,
                    i1 + k + 1 if has_left else None,
                    left[k] if has_left else "",
                    j1 + k + 1 if has_right else None,
                    right[k] if has_right else "",
                )
            )
    return rows


def _equal(
    a: list[str], i1: int, i2: int, j1: int, context: int, *, first: bool, last: bool
) -> list[DiffRow]:
    keep_head = 0 if first else context
    keep_tail = 0 if last else context
    count = i2 - i1
    if count <= keep_head + keep_tail + 1:
        shown = range(count)
        return [DiffRow("same", i1 + k + 1, a[i1 + k], j1 + k + 1, a[i1 + k]) for k in shown]
    rows = [DiffRow("same", i1 + k + 1, a[i1 + k], j1 + k + 1, a[i1 + k]) for k in range(keep_head)]
    skipped = count - keep_head - keep_tail
    rows.append(DiffRow("skipped", None, f"{skipped} unchanged lines", None, ""))
    rows.extend(
        DiffRow("same", i1 + k + 1, a[i1 + k], j1 + k + 1, a[i1 + k])
        for k in range(count - keep_tail, count)
    )
    return rows


def _end(text: str) -> str:
    return "(ends with a newline)" if text.endswith("\n") else "(no newline at end of file)"
