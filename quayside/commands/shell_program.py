"""Loads the shell programs shipped as package data (``*.sh``) as they travel in ``sh -c``."""

from __future__ import annotations

from importlib import resources


def as_sent(text: str) -> str:
    """A shell program as it travels: its first two lines (the shebang and the version line,
    which ``ps`` on the host then shows) and every line that is neither blank nor only a
    comment. Half the bytes of every stage command line; the file stays the documentation."""
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines[2:] if line.strip() and not line.lstrip().startswith("#")]
    return "".join(lines[:2] + kept)


def package_script(package: str, name: str) -> str:
    """The shell program ``name`` shipped in ``package``, as sent."""
    return as_sent(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def with_prelude(prelude: str, script: str) -> str:
    """``script`` (as sent) with the body of ``prelude`` (as sent, without its two header
    lines) after its own header: one program whose ``ps`` line still names ``script``."""
    header = script.split("\n", 2)
    body = prelude.split("\n", 2)[2]
    return f"{header[0]}\n{header[1]}\n{body}{header[2]}"
