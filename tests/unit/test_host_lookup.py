"""The older platform's ``hosts`` ({1: '172.16.0.101'}: IP addresses) as inventory hosts: by
address or name, preferring the run's environment, refusing unknown and outside ones by name."""

from __future__ import annotations

import pytest

from quayside.errors import InputError, NotFoundError
from quayside.inventory import parse_inventory, resolve_target
from quayside.inventory.host_lookup import host_names, hosts_at
from quayside.triggers.literal import parse_mapping
from quayside.triggers.tasks_api import hosts_list

INVENTORY = parse_inventory(
    """
hosts:
  web-101: {address: 172.16.0.101}
  web-102: {address: 172.16.0.102}
  web-v6: {address: "2001:db8::1"}
  by-name: {address: Web-3.Example.COM}
  sshd-a: {address: 127.0.0.1, port: 2201}
  sshd-b: {address: 127.0.0.1, port: 2202}
  db-1: {address: 172.16.0.201}
apps:
  web:
    environments:
      prod: {hosts: [web-101, web-102, web-v6, by-name, sshd-a]}
      test: {hosts: [sshd-b]}
  db:
    environments:
      prod: {hosts: [db-1]}
"""
)
PROD = resolve_target(INVENTORY, "web", "prod").host_names


def names(wanted: list[str], *, env: str | None = "prod") -> list[str]:
    if env is None:
        return host_names(INVENTORY, wanted)
    within = resolve_target(INVENTORY, "web", env).host_names
    return host_names(INVENTORY, wanted, within=within, target=f"web/{env}")


def test_the_seeds_hosts_field_maps_to_host_names() -> None:
    wanted = hosts_list(parse_mapping("{1: '172.16.0.101'}", "hosts"))
    assert names(wanted) == ["web-101"]
    grouped = hosts_list(
        parse_mapping({"1": ["172.16.0.101", "172.16.0.102"], "2": "web-101"}, "h")
    )
    assert names(grouped) == ["web-101", "web-102"]  # in order, each once


def test_addresses_compare_as_addresses_and_dns_names_ignore_case() -> None:
    assert names(["2001:db8:0:0::1"]) == ["web-v6"]
    assert names(["web-3.example.com"]) == ["by-name"]
    assert hosts_at(INVENTORY, "127.0.0.1") == ["sshd-a", "sshd-b"]


def test_a_shared_address_is_the_host_of_the_runs_environment() -> None:
    assert names(["127.0.0.1"]) == ["sshd-a"]
    assert names(["127.0.0.1"], env="test") == ["sshd-b"]
    with pytest.raises(InputError, match=r"hosts: 127.0.0.1 \(sshd-a, sshd-b\): several hosts"):
        names(["127.0.0.1"], env=None)


def test_unknown_entries_are_all_named() -> None:
    with pytest.raises(NotFoundError) as info:
        names(["172.16.0.9", "web-101", "web-9", "172.016.0.101"])
    assert info.value.message.startswith(
        "hosts: 172.16.0.9, web-9, 172.016.0.101: no host of the inventory has this name or address"
    )
    assert "quayside.yaml" in str(info.value.hint)


def test_hosts_outside_the_environment_are_refused_as_sent() -> None:
    with pytest.raises(NotFoundError) as info:
        names(["172.16.0.201", "db-1", "172.16.0.101"])
    assert info.value.message == "hosts: 172.16.0.201 (db-1), db-1 not in web/prod"
    assert info.value.hint is not None
    assert info.value.hint.startswith("hosts of web/prod: web-101 (172.16.0.101), web-102")
    # without an environment, a known host is only mapped (the run's scope judges it)
    assert names(["172.16.0.201"], env=None) == ["db-1"]
    assert PROD[0] == "web-101"
