"""Outside values inside Markdown: each one stays the text it is, never structure.

The Prefect UI renders approval descriptions and artifacts with ``marked`` (GFM, ``breaks``):
a value carrying a line break or ``|`` adds table rows, ``[x](…)`` and ``![x](…)`` become links
(``javascript:`` included) and tracking images, ``https://…``, ``www.…`` and ``a@b.c`` become
links by themselves, and raw HTML (``<img src=…>``, ``<a href=…>``) is rendered after
DOMPurify, which removes scripts but keeps images and links. Every user name, ref, tag,
commit subject, file name, host name or host message put into Markdown goes through one of:

- :func:`inline` — text on one line (a list item, a heading, a sentence);
- :func:`cell` — text in a table cell (the same escaping; optional ``<br>`` line breaks);
- :func:`code` — a code span whose fence is longer than any backtick run in the value;
- :func:`code_block` — a fenced block whose fence no line of the value can close.

Escaping uses CommonMark backslash escapes, which ``marked`` turns back into the plain
characters; line breaks and other control characters become spaces, and bidirectional
controls (which reorder what the reader sees) are dropped.
"""

from __future__ import annotations

import re

LIMIT = 200
"""Characters of a value kept by default (a longer one is cut and ends with ``…``)."""

_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
# Markdown punctuation, plus what starts an autolink: "://", "www." and the "@" of an address.
_SPECIAL = re.compile(r"[\\`*_~\[\]<>|!&@]|:(?=//)|(?<=www)\.", re.IGNORECASE)
_BLOCK_START = re.compile(r"^(?:[#+=-]|\d{1,9}(?=[.)]))")
_BACKTICKS = re.compile(r"`+")


def _text(value: object) -> str:
    if value is None:
        return ""
    return _BIDI.sub("", value if isinstance(value, str) else str(value))


def plain(value: object, *, limit: int | None = LIMIT) -> str:
    """``value`` as one line of plain text: line breaks and control characters become spaces,
    whitespace runs one space, bidirectional controls dropped, cut to ``limit`` characters.

    >>> plain("a\\n| b |\\u202e")
    'a | b |'
    """
    text = _SPACES.sub(" ", _CONTROLS.sub(" ", _BREAKS.sub(" ", _text(value)))).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    return text


def _escape(text: str) -> str:
    escaped = _SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    # at the start of a line, '#', '-', '+', '=' and "1." would start a block
    match = _BLOCK_START.match(escaped)
    if match is None:
        return escaped
    if match.group(0).isdigit():
        end = match.end()
        return escaped[:end] + "\\" + escaped[end:]
    return "\\" + escaped


def inline(value: object, *, limit: int | None = LIMIT) -> str:
    """``value`` as Markdown text on one line: no emphasis, link, image, autolink, HTML, code
    span or table cell boundary can come out of it, wherever on the line it stands.

    Args:
        value: any value (``None`` gives ``""``); ``str()`` of anything else.
        limit: characters kept (``None``: all).

    Returns:
        The escaped text.

    >>> inline("![x](http://evil/t.png) <img src=x>")
    '\\\\!\\\\[x\\\\](http\\\\://evil/t.png) \\\\<img src=x\\\\>'
    """
    return _escape(plain(value, limit=limit))


def cell(value: object, *, limit: int | None = LIMIT, line_breaks: bool = False) -> str:
    """``value`` as the content of a Markdown table cell: :func:`inline` (which escapes ``|``
    and removes line breaks, so the row keeps its cells and the table its rows).

    Args:
        value: any value.
        limit: characters kept.
        line_breaks: keep the value's lines, as ``<br>`` between escaped lines (the only HTML
            in the cell, and written here, not taken from the value).

    Returns:
        The escaped cell text.

    >>> cell("x |\\n| approvals | 1 of 1")
    'x \\\\| \\\\| approvals \\\\| 1 of 1'
    """
    if not line_breaks:
        return inline(value, limit=limit)
    lines = [line for line in _BREAKS.split(_text(value)) if line.strip()]
    text = "\n".join(lines)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    return "<br>".join(inline(line, limit=None) for line in text.split("\n"))


def code(value: object, *, limit: int | None = LIMIT, in_table: bool = False) -> str:
    """``value`` as a Markdown code span (``"`v1.2`"``) that ends where it should: its fence is
    one backtick longer than the longest backtick run in the value, and a value starting or
    ending with a backtick is padded with a space (which Markdown removes).

    Args:
        value: any value; line breaks become spaces. An empty value gives ``""``.
        limit: characters kept.
        in_table: the span stands in a table cell. GFM splits cells at every unescaped ``|``,
            code spans included, and ``marked`` cannot show ``\\|`` inside a span there, so a
            value with ``|`` is written as escaped text (:func:`inline`) instead.

    Returns:
        The code span.

    >>> code("a`b")
    '``a`b``'
    >>> code("`x`")
    '`` `x` ``'
    """
    text = plain(value, limit=limit)
    if not text:
        return ""
    if in_table and "|" in text:
        return _escape(text)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(value: object, *, info: str = "") -> str:
    """``value`` (many lines) as a fenced code block that none of its lines can close: the
    fence is longer than any backtick run in the value (at least three).

    Args:
        value: the text; control characters other than line breaks become spaces.
        info: the info string (a language name such as ``diff``); letters, digits, ``-``.

    Returns:
        The block, fences included, without a trailing newline.

    >>> code_block("```\\nok")
    '````\\n```\\nok\\n````'
    """
    lines = [_CONTROLS.sub(" ", line) for line in _BREAKS.split(_text(value))]
    body = "\n".join(lines)
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    label = re.sub(r"[^A-Za-z0-9-]", "", info)
    return f"{fence}{label}\n{body}\n{fence}"
