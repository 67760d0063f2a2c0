"""Pure argv builders for GNU tar on the machine that deploys (nothing here runs anything)."""

from __future__ import annotations

from pathlib import Path


def create_archive(
    archive: Path, base: Path, files_from: Path, extra_dir: Path, extra: str
) -> list[str]:
    """``tar`` creating ``archive``: the files listed NUL-separated in ``files_from``
    (relative to ``base``, read verbatim: a name is never an option), then ``extra`` from
    ``extra_dir``; PAX format, owners recorded as 0, directories not recursed into.

    >>> create_archive(Path("/t/a.tar"), Path("/p"), Path("/t/l"), Path("/t/m"), "m.new")[-4:]
    ['--directory', '/t/m', '--', 'm.new']
    """
    return [
        "tar",
        "--create",
        f"--file={archive}",
        "--format=pax",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--no-recursion",
        "--directory",
        str(base),
        "--null",
        "--verbatim-files-from",
        f"--files-from={files_from}",
        "--directory",
        str(extra_dir),
        "--",
        extra,
    ]
