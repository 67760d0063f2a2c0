"""Real nginx servers for the config publish tests: one per sshd host of a fleet, each on that
host's own 127.0.0.x address (one port for all), with its own config directory, pid file and
logs; ``/`` answers the text the config says, so a probe tells which config is live.

::

    <base>/<host>/conf/nginx.conf   listen <address>:<port>; location / { return 200 TEXT; }
    <base>/<host>/nginx.pid, error.log, tmp/

The config directory starts as a plain directory. The core needs no pytest; the fixture
``nginx_fleet`` wraps it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.dnsmasq import free_udp_port

NGINX_PACKAGE = "nginx"


def nginx_conf(address: str, port: int, base: Path, text: str) -> str:
    """A complete nginx.conf answering ``text`` on ``address``:``port``."""
    tmp = base / "tmp"
    temps = "".join(
        f"    {kind}_temp_path {tmp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"pid {base / 'nginx.pid'};\nerror_log {base / 'error.log'};\nworker_processes 1;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log off;\n{temps}"
        f"    server {{\n        listen {address}:{port};\n"
        f'        location / {{ return 200 "{text}\\n"; }}\n    }}\n}}\n'
    )


@dataclass
class NginxServer:
    """One nginx at ``address``:``port`` whose config lives under ``base``."""

    name: str
    address: str
    port: int
    base: Path
    binary: str

    @property
    def conf(self) -> Path:
        return self.base / "conf"

    @property
    def pid_file(self) -> Path:
        return self.base / "nginx.pid"

    def config(self, text: str) -> str:
        return nginx_conf(self.address, self.port, self.base, text)

    def start(self, text: str) -> None:
        (self.base / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.mkdir(exist_ok=True)
        (self.conf / "nginx.conf").write_text(self.config(text))
        subprocess.run([self.binary, "-c", str(self.conf / "nginx.conf")], check=True, timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.get() is not None:
                return
            time.sleep(0.02)
        raise RuntimeError(f"nginx {self.name} on {self.address}:{self.port} did not answer")

    def stop(self) -> None:
        try:
            os.kill(int(self.pid_file.read_text().strip()), signal.SIGQUIT)
        except (OSError, ValueError):
            pass

    def get(self) -> str | None:
        """The text ``/`` answers with (None: no answer)."""
        try:
            with urllib.request.urlopen(f"http://{self.address}:{self.port}/", timeout=1) as r:
                return str(r.read().decode().strip())
        except OSError:
            return None


class NginxFleet:
    """An nginx per ``(name, address)``, under ``base/<name>``, all on one port."""

    def __init__(self, base: Path, hosts: Sequence[tuple[str, str]], binary: str) -> None:
        self.base = base
        self.port = free_udp_port([a for _, a in hosts])
        self.servers = [NginxServer(n, a, self.port, base / n, binary) for n, a in hosts]

    def start(self, text: str) -> None:
        for server in self.servers:
            server.start(text)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def server(self, name: str) -> NginxServer:
        return next(s for s in self.servers if s.name == name)

    def service(self, **more: Any) -> dict[str, Any]:
        """The ``config.<service>`` entry of quayside.yaml for these servers."""
        entry: dict[str, Any] = {
            "kind": "nginx",
            "dir": str(self.base / "{host}" / "conf"),
            "main_file": "nginx.conf",
            "reload": ["pkill", "-HUP", "--pidfile", str(self.base / "{host}" / "nginx.pid")],
            "verify_url": f"http://{{address}}:{self.port}/",
            "verify_timeout_s": 3,
        }
        entry.update(more)
        return entry

    def __iter__(self) -> Iterator[NginxServer]:
        return iter(self.servers)


try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def nginx_fleet(tmp_path: Path, clean_ssh_fleet: Any) -> Iterator[NginxFleet]:
        """A stopped nginx per host of the sshd fleet (``fleet.start(text)`` starts them),
        stopped after the test."""
        from testbed.require import need_binary

        binary = need_binary("nginx", NGINX_PACKAGE)
        tmp_path.chmod(0o755)
        fleet = NginxFleet(
            tmp_path / "nginx", [(h.name, h.address) for h in clean_ssh_fleet], binary
        )
        try:
            yield fleet
        finally:
            fleet.stop()
