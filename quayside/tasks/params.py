"""How values travel into task runs."""

from __future__ import annotations

from typing import TypeVar, cast

from prefect.utilities.annotations import quote

T = TypeVar("T")


def opaque(value: T) -> T:
    """``value`` wrapped so Prefect passes it to a task without walking into it (a release
    spec holds a manifest of thousands of entries; walking it per host costs real time)."""
    return cast(T, quote(value))
