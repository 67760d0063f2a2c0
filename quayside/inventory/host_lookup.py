"""Inventory hosts named the way the older task platform names them: by IP address.

The older platform's scripts send ``hosts: {1: '172.16.0.101'}``; Quayside's runs take host
names. Each entry is a host name, or an address compared with every host's ``address`` (IP
addresses as addresses, so ``::1`` and ``0:0::1`` are one; DNS names ignoring case). Nothing is
resolved through DNS: an entry matches what quayside.yaml says, or nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from quayside.errors import InputError, NotFoundError
from quayside.inventory.models import Inventory

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def hosts_at(inventory: Inventory, address: str) -> list[str]:
    """Names of the hosts whose ``address`` is ``address`` (an IP or a DNS name), sorted."""
    ip = _ip(address)
    found = []
    for name, host in inventory.hosts.items():
        if ip is not None:
            if _ip(host.address) == ip:
                found.append(name)
        elif host.address.strip().lower() == address.strip().lower():
            found.append(name)
    return sorted(found)


def host_names(
    inventory: Inventory,
    wanted: Sequence[str],
    *,
    within: Sequence[str] = (),
    target: str | None = None,
) -> list[str]:
    """The inventory host names for ``wanted`` entries (names or addresses), in order, without
    repeats.

    Args:
        inventory: the validated inventory.
        wanted: what the caller sent: host names or addresses.
        within: the hosts the run may touch (its environment's); an address two hosts share is
            the one of them in here.
        target: the environment ``within`` is (``web/prod``): given, a host outside it is
            refused here, named as the caller sent it.

    Returns:
        Host names; an entry that is a host name stays itself (whether it is allowed is the
        caller's question).

    Raises:
        NotFoundError: entries that are no host's name or address, all named; with
            ``target``, hosts outside ``within``.
        InputError: an address shared by several hosts, none or several of them in ``within``.
    """
    names: list[str] = []
    unknown: list[str] = []
    ambiguous: list[str] = []
    outside: list[str] = []
    allowed = set(within)
    for entry in wanted:
        if entry in inventory.hosts:
            found = [entry]
        else:
            found = hosts_at(inventory, entry)
            if len(found) > 1:
                found = [name for name in found if name in allowed] or found
        if not found:
            unknown.append(entry)
        elif len(found) > 1:
            ambiguous.append(f"{entry} ({', '.join(found)})")
        elif target is not None and found[0] not in allowed:
            outside.append(entry if entry == found[0] else f"{entry} ({found[0]})")
        elif found[0] not in names:
            names.append(found[0])
    if unknown:
        raise NotFoundError(
            f"hosts: {', '.join(unknown)[:300]}: no host of the inventory has this name or address",
            hint="send the address or name of a host in quayside.yaml's hosts: (the run's "
            "environment's hosts), or add the host there",
        )
    if outside:
        listed = ", ".join(f"{n} ({inventory.hosts[n].address})" for n in within)
        raise NotFoundError(
            f"hosts: {', '.join(outside)[:300]} not in {target}",
            hint=f"hosts of {target}: {listed[:300] or 'none'}",
        )
    if ambiguous:
        raise InputError(
            f"hosts: {'; '.join(ambiguous)[:300]}: several hosts have this address",
            hint="send the host's name instead of its address",
        )
    return names
