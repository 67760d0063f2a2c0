"""Building the stale-save error both backends raise: the latest version and the refused
content, compared, with secrets masked."""

from __future__ import annotations

from quayside.config.diffing import unified
from quayside.config.errors import StaleSave
from quayside.config.masking import MASK, shown
from quayside.config.records import ItemVersion, VariableVersion


def stale_item(current: ItemVersion, *, base_version: int, attempted: str) -> StaleSave:
    """The error for a refused save of an item: carries both contents and their diff."""
    comparison = unified(
        current.content,
        attempted,
        f"{current.address} v{current.version} (latest, by {current.author})",
        f"{current.address} (your refused save)",
    )
    return StaleSave(
        str(current.address),
        base_version=base_version,
        current_version=current.version,
        current_author=current.author,
        current_shown=current.content,
        attempted_shown=attempted,
        attempted=attempted,
        comparison=comparison or "(your content equals the latest version)",
    )


def stale_variable(
    current: VariableVersion, *, base_version: int, attempted: str, secret: bool
) -> StaleSave:
    """The error for a refused save of a variable; secret values are never part of it."""
    current_text = shown(current)
    attempted_text = MASK if secret else attempted
    return StaleSave(
        f"{current.env} ${current.name}",
        base_version=base_version,
        current_version=current.version,
        current_author=current.author,
        current_shown=current_text,
        attempted_shown=attempted_text,
        attempted=None if secret else attempted,
        comparison=f"latest: {current_text}\nyours:  {attempted_text}",
    )
