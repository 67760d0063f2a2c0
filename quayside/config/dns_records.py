"""The DNS records dnsmasq serves from its files, so a publish can be verified by asking the
server: hosts files (``IP name...``) and ``dnsmasq.conf``'s ``address=/name/IP`` and
``host-record=name,...,IP`` lines.

A hosts file line whose first field is not an IP address is refused here (dnsmasq would skip
it silently and the name would vanish from DNS). The message quotes the field (a rendered
template's: the config publish flow masks secret values in it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from quayside.errors import InputError

Records = dict[str, frozenset[str]]
"""name (lower case, no final dot) -> the addresses it answers with."""


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _add(records: dict[str, set[str]], name: str, address: str) -> None:
    records.setdefault(name.lower().rstrip("."), set()).add(address)


def hosts_records(content: str, filename: str = "hosts") -> Records:
    """The records of a hosts file.

    Raises:
        InputError: a line whose first field is not an IP address, or an address without
            a name (file and line named).
    """
    records: dict[str, set[str]] = {}
    for number, raw in enumerate(content.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        address = _ip(fields[0])
        if address is None:
            # quoted whole or not at all: a caller masks secret values in the message, and a
            # cut-off secret would no longer match its mask
            shown = (
                repr(fields[0]) if len(fields[0]) <= 60 else f"a {len(fields[0])}-character field"
            )
            raise InputError(
                f"{filename} line {number}: {shown} is not an IP address",
                hint="a hosts file line is 'ADDRESS NAME [NAME...]'",
            )
        if len(fields) < 2:
            raise InputError(f"{filename} line {number}: {address} has no name")
        for name in fields[1:]:
            _add(records, name, address)
    return {k: frozenset(v) for k, v in records.items()}


def conf_records(content: str) -> Records:
    """The records of ``address=/name/.../IP`` and ``host-record=name,...,IP`` lines."""
    records: dict[str, set[str]] = {}
    for raw in content.splitlines():
        line = raw.strip()
        key, _, value = line.partition("=")
        key = key.strip()
        if key == "address" and value.startswith("/"):
            parts = value.split("/")
            address = _ip(parts[-1].strip())
            if address is None:
                continue
            for name in parts[1:-1]:
                if name:
                    _add(records, name, address)
        elif key == "host-record":
            items = [i.strip() for i in value.split(",") if i.strip()]
            addresses = [a for a in (_ip(i) for i in items) if a is not None]
            names = [i for i in items if _ip(i) is None and not i.isdigit()]
            for name in names:
                for address in addresses:
                    _add(records, name, address)
    return {k: frozenset(v) for k, v in records.items()}


def merge(*parts: Records) -> Records:
    out: dict[str, set[str]] = {}
    for part in parts:
        for name, addresses in part.items():
            out.setdefault(name, set()).update(addresses)
    return {k: frozenset(v) for k, v in out.items()}


@dataclass(frozen=True)
class RecordChange:
    """One name whose answer changes: what it answered before and what it must answer now."""

    name: str
    before: frozenset[str]
    after: frozenset[str]


def changed_records(
    before: Mapping[str, frozenset[str]], after: Mapping[str, frozenset[str]]
) -> list[RecordChange]:
    """Every name whose addresses differ, sorted by name."""
    names = sorted(set(before) | set(after))
    return [
        RecordChange(n, before.get(n, frozenset()), after.get(n, frozenset()))
        for n in names
        if before.get(n, frozenset()) != after.get(n, frozenset())
    ]
