"""The failure policy of a deploy: how many failed hosts an environment tolerates."""

from __future__ import annotations

import math

from quayside.errors import InputError


def failure_limit(spec: int | str | None, total: int) -> int:
    """Failed hosts tolerated out of ``total`` for a threshold spec (``2``, ``"25%"``, None=0).

    A percentage is rounded down, so ``"10%"`` of 5 hosts tolerates none.

    >>> failure_limit("25%", 8), failure_limit(1, 8), failure_limit(None, 8)
    (2, 1, 0)
    """
    if spec is None:
        return 0
    if isinstance(spec, int):
        if spec < 0:
            raise InputError(f"failure threshold must not be negative, got {spec}")
        return spec
    text = spec.strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return math.floor(total * pct / 100)
        value = int(text)
    except ValueError:
        raise InputError(
            f"failure threshold {spec!r} is not a number or a percentage like '25%'"
        ) from None
    if value < 0:
        raise InputError(f"failure threshold must not be negative, got {spec}")
    return value


def exceeded(failed: int, limit: int) -> bool:
    """True once more than ``limit`` hosts have failed."""
    return failed > limit
