"""quayside.markdown_text: hostile values stay text — in the escaped Markdown, and in what the
Prefect UI's own lexer makes of it (no extra table row or cell, no link, image or HTML)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from quayside.markdown_text import cell, code, code_block, inline, plain
from testbed.ui_markdown import Rendered

FORGED_ROWS = "eve\n| approvals | 1 of 1 — pre-approved by boss |\n| self-approval | allowed |"
IMAGE = "![x](http://evil/t.png)"
LINK = "[click](javascript:alert(document.cookie))"
TICKS = "a`b``c```d`"
HTML = "<img src=x onerror=alert(1)>"
AUTOLINKS = "see https://evil.example/t, WWW.evil.com, ftp://e.x, a@b.com and <http://x.y>"
HOSTILE = [
    FORGED_ROWS,
    IMAGE,
    LINK,
    TICKS,
    HTML,
    AUTOLINKS,
    "x\\|y \\ z\\",
    "**bold** _em_ ~~del~~ ~x~ &lt;img src=x&gt; &#124;",
    "[ref]: http://evil/ref",
    "a|b",
    "\u202egnp.exe",
    "\r\n\u2028\u2029\x85\x0b\x0c\x1c tabs\tand\x00nul",
]
LINE_STARTS = ["# heading", "- item", "+ item", "1. item", "2) item", "> quote", "***", "====="]


def shown(value: str) -> str:
    """What the reader should see: the value on one line."""
    return plain(value, limit=None)


# -- the escaped text ------------------------------------------------------------------------


def test_inline_breaks_no_line_and_escapes_every_marker() -> None:
    text = inline(FORGED_ROWS)
    assert "\n" not in text and text.count("\\|") == FORGED_ROWS.count("|")
    assert inline(IMAGE) == "\\!\\[x\\](http\\://evil/t.png)"
    assert inline(LINK).startswith("\\[click\\](")
    assert inline(HTML) == "\\<img src=x onerror=alert(1)\\>"
    assert inline(TICKS) == "a\\`b\\`\\`c\\`\\`\\`d\\`"
    assert "https\\://" in inline(AUTOLINKS) and "WWW\\.evil" in inline(AUTOLINKS)
    assert "a\\@b.com" in inline(AUTOLINKS)


@pytest.mark.parametrize("value", LINE_STARTS)
def test_inline_starts_no_block(value: str) -> None:
    assert inline(value) != value and inline(value).lstrip("\\")[:1] == value[:1]


def test_plain_drops_bidi_controls_and_cuts_long_values() -> None:
    assert plain("\u202egnp.exe") == "gnp.exe"
    assert plain("x" * 300) == "x" * 199 + "…"
    assert inline("x" * 300, limit=None) == "x" * 300


def test_cell_is_inline_and_keeps_lines_as_br_only_when_asked() -> None:
    assert cell(FORGED_ROWS) == inline(FORGED_ROWS)
    assert cell("one\n<b>two</b>\n\nthree|", line_breaks=True) == (
        "one<br>\\<b\\>two\\</b\\><br>three\\|"
    )
    assert cell(None) == "" and cell(3) == "3"


def test_code_fence_outgrows_the_longest_backtick_run() -> None:
    assert code("v1.2") == "`v1.2`"
    assert code(TICKS) == "```` a`b``c```d` ````"
    assert code("`") == "`` ` ``"
    assert code("") == "" and code(None) == ""
    assert code("a\n|b") == "`a |b`"
    assert code("a|b", in_table=True) == "a\\|b"  # marked cannot show | in a span in a table


def test_code_block_outgrows_any_fence_inside() -> None:
    assert code_block("```\nrm -rf /\n````", info="sh;x") == "`````shx\n```\nrm -rf /\n````\n`````"
    assert code_block("plain") == "```\nplain\n```"


# -- what the Prefect UI renders -------------------------------------------------------------


def _nothing_active(result: Rendered) -> None:
    assert result.links == [] and result.images == [] and result.html == []


@pytest.mark.parametrize("value", HOSTILE + LINE_STARTS)
def test_ui_shows_each_value_as_written(ui_markdown: Callable[[str], Rendered], value: str) -> None:
    table = "\n".join(
        [
            "| cell | code |",
            "| --- | --- |",
            f"| {cell(value)} | {code(value, in_table=True)} |",
            "| second | row |",
        ]
    )
    text = f"{table}\n\n{inline(value)} {code(value)}\n\n{inline(value)}\n\n{code_block(value)}"
    result = ui_markdown(text)
    _nothing_active(result)
    assert result.tables == [[["cell", "code"], [shown(value), shown(value)], ["second", "row"]]]
    assert result.blocks == ["table", "paragraph", "paragraph", "code"]
    assert code_block(value).split("\n", 1)[1].rsplit("\n", 1)[0] in result.code


def test_ui_without_escaping_is_what_the_review_found(
    ui_markdown: Callable[[str], Rendered],
) -> None:
    """The harness sees the attack: raw values add rows, links, images and HTML."""
    raw = f"| k | v |\n| --- | --- |\n| requested by | {FORGED_ROWS} |\n\n{IMAGE} {LINK} {HTML}"
    result = ui_markdown(raw)
    assert len(result.tables[0]) == 4
    assert result.images == ["http://evil/t.png"] and result.html == [HTML]
    assert "javascript:alert(document.cookie)" in result.links
