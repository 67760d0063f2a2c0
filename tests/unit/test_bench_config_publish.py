"""The config publish benchmark's pure parts: the hosts files it publishes and the inventory
entries it writes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from bench.config_publish import RESULTS, api_address, host_entries, hosts_text
from quayside.config.dns_records import changed_records, hosts_records


def test_each_publish_moves_exactly_one_record_of_fifty_one() -> None:
    before, after = hosts_records(hosts_text(1)), hosts_records(hosts_text(2))
    assert len(before) == len(after) == 51
    [change] = changed_records(before, after)
    assert change.name == "api.internal"
    assert change.after == {api_address(2)} and change.before == {api_address(1)}
    assert api_address(300) == "10.9.1.51"
    assert RESULTS == ("config_publish",)


def test_inventory_hosts_carry_the_fleet_credentials() -> None:
    host = SimpleNamespace(
        name="web-1", address="127.0.0.101", port=2222, user="quayside-deploy",
        key_file=Path("/k"), known_hosts=Path("/kh"),
    )  # fmt: skip
    assert host_entries([host]) == {
        "web-1": {"address": "127.0.0.101", "port": 2222, "user": "quayside-deploy",
                  "key_file": "/k", "known_hosts": "/kh"}
    }  # fmt: skip
