"""A hosts file line dnsmasq would skip is refused with the field quoted whole or not at all:
the publish flow masks secret values in the message, and a cut-off secret would not match."""

from __future__ import annotations

import pytest

from quayside.config.dns_records import hosts_records
from quayside.errors import InputError


def test_a_short_first_field_is_quoted_whole() -> None:
    with pytest.raises(InputError, match=r"hosts line 2: 'not-an-ip' is not an IP address"):
        hosts_records("10.0.0.1 a\nnot-an-ip b\n")


def test_a_long_first_field_is_not_quoted_at_all() -> None:
    field = "k" * 80
    with pytest.raises(InputError) as info:
        hosts_records(f"{field} b\n", "DNS/release/dnsmasq/hosts")
    assert str(info.value) == (
        "DNS/release/dnsmasq/hosts line 1: a 80-character field is not an IP address"
    )
    assert "k" * 10 not in str(info.value)
