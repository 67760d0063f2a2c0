"""Unified diffs of config versions: equal texts give nothing, and a missing final newline is
marked as diff marks it, so it never hides a change."""

from __future__ import annotations

from quayside.config.diffing import unified


def test_equal_texts_have_no_diff() -> None:
    assert unified("a\n", "a\n", "x v1", "x v2") == ""


def test_a_changed_line() -> None:
    text = unified("port=53\ncache=1\n", "port=5353\ncache=1\n", "f v1", "f v2")
    assert text.splitlines() == [
        "--- f v1",
        "+++ f v2",
        "@@ -1,2 +1,2 @@",
        "-port=53",
        "+port=5353",
        " cache=1",
    ]


def test_a_missing_final_newline_is_shown() -> None:
    text = unified("a\n", "a", "f v1", "f v2")
    assert text.endswith("-a\n+a\n\\ No newline at end of file\n")
