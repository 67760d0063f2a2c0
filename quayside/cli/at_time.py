"""``--at TIME`` for commands that schedule a run: when, in UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from quayside.errors import InputError
from quayside.triggers.tasks_api import parse_exec_time, to_utc

MIN_LEAD = timedelta(seconds=5)
"""A time closer than this is refused: scheduling it would be a race with "now"."""
MAX_LEAD = timedelta(days=366)
_RELATIVE = re.compile(r"\+(\d{1,6})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_at(text: str, tz: str, *, now: datetime | None = None) -> datetime:
    """The moment ``--at`` names.

    Args:
        text: local time in ``tz`` (``2026-11-22 23:30``, seconds optional, ``/`` accepted),
            ISO 8601 with an offset (``2026-11-22T23:30:00+08:00``), or relative (``+30m``,
            ``+2h``, ``+1d``).
        tz: the inventory's timezone, for local times.
        now: the current time (default: now).

    Returns:
        An aware UTC datetime at least 5 seconds ahead.

    Raises:
        InputError: the text is none of those forms, does not exist in ``tz``, is in the past
            (or less than 5 s ahead) or more than a year ahead.

    >>> base = datetime(2026, 1, 1, tzinfo=UTC)
    >>> parse_at("+90m", "UTC", now=base).isoformat()
    '2026-01-01T01:30:00+00:00'
    >>> parse_at("2026-01-01 08:00", "Asia/Shanghai", now=base - timedelta(hours=1)).hour
    0
    """
    at = now or datetime.now(UTC)
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        moment = at + timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    else:
        try:
            moment = to_utc(parse_exec_time(value), tz, field="--at")
        except ValueError:
            raise InputError(
                f"--at {text[:40]!r} is not a time",
                hint="use local time like '2026-11-22 23:30' (inventory timezone "
                f"{tz}), ISO 8601 like '2026-11-22T23:30:00+08:00', or '+30m' / '+2h' / '+1d'",
            ) from None
    if moment < at + MIN_LEAD:
        raise InputError(
            f"--at {text[:40]!r} is {moment:%Y-%m-%d %H:%M:%S} UTC, not in the future",
            hint="give a later time, or leave --at out to start now",
        )
    if moment > at + MAX_LEAD:
        raise InputError(f"--at {text[:40]!r} is more than a year ahead")
    return moment
