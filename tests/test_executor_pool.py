"""Connections: a run's executors, opened early in the background, against real sshd hosts."""

from __future__ import annotations

import time

import pytest

from quayside.errors import ConnectError
from quayside.executors import SSHExecutor
from quayside.executors.local import LocalExecutor
from quayside.executors.pool import Connections
from quayside.inventory.models import Host
from tests.harness.sshd import SshdFleet, SshdHost

pytestmark = pytest.mark.ssh


def inventory_host(h: SshdHost) -> Host:
    return Host(
        address=h.address,
        port=h.port,
        user=h.user,
        key_file=str(h.key_file),
        known_hosts=str(h.known_hosts),
        connect_timeout=5,
    )


def wait_connected(executor: SSHExecutor, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while executor.connections_opened == 0:
        assert time.monotonic() < deadline, f"{executor.name} never connected"
        time.sleep(0.02)


def test_warm_opens_the_connections_that_commands_then_use(clean_ssh_fleet: SshdFleet) -> None:
    hosts = {h.name: inventory_host(h) for h in clean_ssh_fleet}
    hosts["here"] = Host(address="127.0.0.1", transport="local")
    names = [h.name for h in clean_ssh_fleet]
    with Connections(hosts) as pool:
        assert pool.warm([*names, "here"]) == len(names)  # the local host has nothing to open
        assert isinstance(pool.get("here"), LocalExecutor)
        for name in names:
            executor = pool.get(name)
            assert isinstance(executor, SSHExecutor) and pool.get(name) is executor
            wait_connected(executor)
            assert executor.run(["echo", name]).stdout == f"{name}\n"
            assert executor.connections_opened == 1  # the command used the warm connection
        # a command started while the warm-up still connects waits for it: one connection
        with Connections(hosts) as second:
            second.warm(names[:1])
            assert second.get(names[0]).run(["true"]).ok
            assert second.get(names[0]).connections_opened == 1  # type: ignore[attr-defined]
    for name in names:
        assert pool.get(name)._client is None  # type: ignore[attr-defined]  # closed


def test_a_failed_warm_up_is_reported_by_the_command_not_the_warm_up(
    clean_ssh_fleet: SshdFleet,
) -> None:
    down = clean_ssh_fleet[1]
    hosts = {down.name: inventory_host(down)}
    down.stop()
    try:
        with Connections(hosts) as pool:
            assert pool.warm([down.name]) == 1  # returns at once; nothing raised here
            with pytest.raises(ConnectError) as info:
                pool.get(down.name).run(["true"])
            assert f"{down.address}:{down.port}" in str(info.value)
            assert "connection refused" in str(info.value)
    finally:
        down.start()
    with Connections(hosts) as pool:  # the host is back: a new run connects as usual
        assert pool.get(down.name).run(["echo", "up"]).stdout == "up\n"


def test_an_unknown_host_is_a_key_error(clean_ssh_fleet: SshdFleet) -> None:
    with Connections({}) as pool, pytest.raises(KeyError):
        pool.warm(["nowhere"])
