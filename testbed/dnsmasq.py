"""Real dnsmasq servers for the config publish tests: one per sshd host of a fleet, each on
that host's own 127.0.0.x address (one port for all), with its own config directory, pid file
and control script, so the publish flow reaches each through its sshd host as it would a DNS
server.

::

    <base>/<host>/conf/dnsmasq.conf   listen on the host's address, addn-hosts=<conf>/hosts
    <base>/<host>/conf/hosts          the records
    <base>/<host>/dnsmasq.pid
    <base>/<host>/ctl.sh              reload (SIGHUP) | restart | stop; refuses while the live
                                      set holds a file named ``break-reload``

The config directory starts as a plain directory, as on a server nobody published to yet.
The core needs no pytest (``bench/`` uses it); the fixture ``dnsmasq_fleet`` wraps it.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DNSMASQ_PACKAGE = "dnsmasq"

CTL_SCRIPT = r"""#!/bin/sh
# test control script of one dnsmasq (written by testbed/dnsmasq.py)
here=$(dirname "$0")
live="$here/conf"
pidfile="$here/dnsmasq.pid"
if [ -e "$live/break-reload" ]; then echo "ctl: $1 refused: break-reload is set" >&2; exit 3; fi
stop() {
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
}
case "$1" in
  reload) exec pkill -HUP --pidfile "$pidfile" ;;
  restart) stop; exec "$DNSMASQ" --conf-file="$live/dnsmasq.conf" ;;
  stop) stop ;;
  *) echo "usage: ctl.sh reload|restart|stop" >&2; exit 2 ;;
esac
"""


def free_udp_port(addresses: Sequence[str]) -> int:
    """A port free for UDP and TCP on every address."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((addresses[0], 0))
            port: int = probe.getsockname()[1]
        try:
            for address in addresses:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every address")


def dnsmasq_conf(
    address: str, port: int, base: Path, extra: str = "", user: str | None = None
) -> str:
    """The config of the server at ``base`` (reads its hosts through the live ``conf`` path;
    runs as ``user``, default the current one)."""
    return (
        f"listen-address={address}\nport={port}\nbind-interfaces\nno-resolv\nno-hosts\n"
        f"user={user or getpass.getuser()}\npid-file={base / 'dnsmasq.pid'}\n"
        f"addn-hosts={base / 'conf' / 'hosts'}\n{extra}"
    )


@dataclass
class DnsmasqServer:
    """One dnsmasq at ``address``:``port`` whose files live under ``base``."""

    name: str
    address: str
    port: int
    base: Path
    binary: str
    user: str | None = None
    """Who owns the files and runs dnsmasq (the sshd hosts' login; default the current user)."""

    @property
    def conf(self) -> Path:
        return self.base / "conf"

    @property
    def pid_file(self) -> Path:
        return self.base / "dnsmasq.pid"

    @property
    def ctl(self) -> Path:
        return self.base / "ctl.sh"

    def write(self, hosts: str, extra_conf: str = "") -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.conf.mkdir(exist_ok=True)
        (self.conf / "dnsmasq.conf").write_text(
            dnsmasq_conf(self.address, self.port, self.base, extra_conf, self.user)
        )
        (self.conf / "hosts").write_text(hosts)
        self.ctl.write_text(CTL_SCRIPT)
        self.ctl.chmod(0o755)
        if self.user is not None and self.user != getpass.getuser():
            import pwd
            import shutil

            entry = pwd.getpwnam(self.user)
            for path in [self.base, *self.base.rglob("*")]:
                shutil.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        env = {**os.environ, "DNSMASQ": self.binary}
        subprocess.run(["sh", str(self.ctl), "restart"], check=True, env=env, timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.pid_file.exists() and self.query("quayside-probe.invalid") is not None:
                return
            time.sleep(0.02)
        raise RuntimeError(f"dnsmasq {self.name} on {self.address}:{self.port} did not answer")

    def stop(self) -> None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass

    def query(self, name: str, rdtype: str = "A") -> frozenset[str] | None:
        """The addresses ``name`` answers with (None: no answer at all)."""
        import dns.exception
        import dns.message
        import dns.query

        try:
            reply = dns.query.udp(
                dns.message.make_query(name, rdtype), self.address, port=self.port, timeout=0.5
            )
        except (dns.exception.Timeout, OSError):
            return None
        return frozenset(r.to_text() for rrset in reply.answer for r in rrset)


class DnsmasqFleet:
    """A dnsmasq per ``(name, address)``, under ``base/<name>``, all on one port."""

    def __init__(
        self,
        base: Path,
        hosts: Sequence[tuple[str, str]],
        binary: str,
        user: str | None = None,
    ) -> None:
        self.base = base
        self.port = free_udp_port([a for _, a in hosts])
        self.servers = [DnsmasqServer(n, a, self.port, base / n, binary, user) for n, a in hosts]

    def start(self, hosts: str, extra_conf: str = "") -> None:
        for server in self.servers:
            server.write(hosts, extra_conf)
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def server(self, name: str) -> DnsmasqServer:
        return next(s for s in self.servers if s.name == name)

    def service(self, **more: Any) -> dict[str, Any]:
        """The ``config.<service>`` entry of quayside.yaml for these servers."""
        entry: dict[str, Any] = {
            "kind": "dnsmasq",
            "dir": str(self.base / "{host}" / "conf"),
            "main_file": "dnsmasq.conf",
            # the binary's path: /usr/sbin is not on a deploy login's PATH
            "check": [self.servers[0].binary, "--test", "--conf-file={main}"],
            "reload": ["sh", str(self.base / "{host}" / "ctl.sh"), "reload"],
            "restart": [
                "env",
                f"DNSMASQ={self.servers[0].binary}",
                "sh",
                str(self.base / "{host}" / "ctl.sh"),
                "restart",
            ],  # fmt: skip
            "dns_port": self.port,
            "verify_timeout_s": 3,
        }
        entry.update(more)
        return entry

    def __iter__(self) -> Iterator[DnsmasqServer]:
        return iter(self.servers)


try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def dnsmasq_fleet(tmp_path: Path, clean_ssh_fleet: Any) -> Iterator[DnsmasqFleet]:
        """A stopped dnsmasq per host of the sshd fleet (``fleet.start(hosts)`` starts them),
        stopped after the test."""
        from testbed.require import need_binary

        binary = need_binary("dnsmasq", DNSMASQ_PACKAGE)
        tmp_path.chmod(0o755)
        fleet = DnsmasqFleet(
            tmp_path / "dns", [(h.name, h.address) for h in clean_ssh_fleet], binary
        )
        try:
            yield fleet
        finally:
            fleet.stop()
