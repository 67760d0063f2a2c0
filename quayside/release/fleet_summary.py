"""How a fleet that a release left mixed reads: ``3 of 5 hosts on v2, 2 on v1``.

Pure and import-free, so ``quayside releases`` can show it without loading anything else;
the summary it reads is written by :mod:`quayside.release.reconcile`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

NO_RELEASE = "no release"
UNKNOWN = "unknown (unreadable)"


def fleet_counts(serving: Iterable[str]) -> list[list[Any]]:
    """``[[label, hosts], ...]``, most hosts first (then by label; unreadable hosts last),
    from each host's label."""
    counts = Counter(serving)
    order = sorted(counts.items(), key=lambda kv: (kv[0] == UNKNOWN, -kv[1], kv[0]))
    return [[label, n] for label, n in order]


def fleet_line(summary: Mapping[str, Any] | None) -> str | None:
    """``3 of 5 hosts on v2, 2 on v1`` from a reconciled release's summary (None if it has no
    fleet: a release that was not reconciled, or one with no hosts)."""
    if not summary:
        return None
    fleet = summary.get("fleet")
    total = summary.get("hosts")
    if not fleet or not isinstance(total, int):
        return None
    parts = []
    for i, (label, count) in enumerate(fleet):
        hosts = "host" if total == 1 else "hosts"
        parts.append(f"{count} of {total} {hosts} on {label}" if i == 0 else f"{count} on {label}")
    return ", ".join(parts)
