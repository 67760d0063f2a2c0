"""``--at TIME`` parsing (quayside.cli.at_time): local time in the inventory's zone, ISO 8601,
relative; everything else refused with the forms it takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quayside.cli.at_time import parse_at
from quayside.errors import InputError

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("+30m", "UTC", NOW + timedelta(minutes=30)),
        ("+2h", "Asia/Shanghai", NOW + timedelta(hours=2)),
        ("+1d", "UTC", NOW + timedelta(days=1)),
        ("+10s", "UTC", NOW + timedelta(seconds=10)),
        ("2026-11-22 23:30", "Asia/Shanghai", datetime(2026, 11, 22, 15, 30, tzinfo=UTC)),
        ("2026/11/22 23:30:15", "UTC", datetime(2026, 11, 22, 23, 30, 15, tzinfo=UTC)),
        ("2026-11-22T23:30:00+08:00", "UTC", datetime(2026, 11, 22, 15, 30, tzinfo=UTC)),
        (" 2026-11-22T03:00:00Z ", "Asia/Shanghai", datetime(2026, 11, 22, 3, 0, tzinfo=UTC)),
    ],
)
def test_accepted_forms(text: str, tz: str, expected: datetime) -> None:
    assert parse_at(text, tz, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "tz", "message"),
    [
        ("tomorrow", "UTC", "is not a time"),
        ("__import__('os')", "UTC", "is not a time"),
        ("+5x", "UTC", "is not a time"),
        ("-5m", "UTC", "is not a time"),
        ("+3s", "UTC", "not in the future"),  # closer than 5 s races with now
        ("2026-11-22 09:59", "Asia/Shanghai", "not in the future"),  # 01:59 UTC
        ("2001-01-01 00:00", "UTC", "not in the future"),
        ("+367d", "UTC", "more than a year ahead"),
        ("2027-03-28 02:30", "Europe/Berlin", "does not exist in Europe/Berlin"),  # DST gap
        ("x" * 500, "UTC", "is not a time"),
    ],
)
def test_refused(text: str, tz: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_at(text, tz, now=NOW)
    assert message in err.value.message
    assert "--at" in err.value.message
    assert len(err.value.message) < 200


def test_an_unparsable_time_names_the_forms_and_the_zone() -> None:
    with pytest.raises(InputError) as err:
        parse_at("soon", "Asia/Shanghai", now=NOW)
    assert err.value.hint is not None and "Asia/Shanghai" in err.value.hint
    assert "+30m" in err.value.hint
