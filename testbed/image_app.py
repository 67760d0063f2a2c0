"""An image app for the image release tests and benchmark: small busybox images that serve
their version over HTTP on the slot Quayside gives them (``QUAYSIDE_LISTEN``), an nginx in
front that proxies to the upstream Quayside writes, and a load loop counting failed requests.

::

    image:  /bin/busybox, /bin/sh, /www/index.html (the version), /www/health,
            /www/config/ (the mounted config), /app/app.war (the artifact)
    nginx:  <base>/conf/nginx.conf   include upstream.conf; proxy_pass http://app;
            <base>/conf/upstream.conf  (before the first release: a slot nothing listens on)

The core needs no pytest (bench/ uses it); the fixture ``image_front`` wraps the nginx.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.docker_engine import busybox_path

APP_ADDRESS = "127.0.0.81"
"""The loopback address the front nginx and the app's slots listen on."""


def free_tcp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def app_dockerfile() -> str:
    return (
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nCOPY www /www\n"
        "COPY app.war /app/app.war\nCOPY start.sh /start.sh\n"
        'CMD ["/bin/sh", "/start.sh"]\n'
    )


def start_script(healthy: bool) -> str:
    if healthy:  # serve the version, and the mounted config under /www/config
        return 'exec /bin/busybox httpd -f -v -p "$QUAYSIDE_LISTEN" -h /www\n'
    return "exec /bin/busybox sleep 100000\n"


def build_app_image(
    client: Any, tag: str, version: str, context: Path, *, war: bytes = b"", healthy: bool = True
) -> str:
    """Build ``tag``: a busybox httpd answering ``version`` on ``/`` and ``ok`` on
    ``/health`` (or, ``healthy=False``, a process that never listens). Returns the image id."""
    busybox = busybox_path()
    if busybox is None:
        raise RuntimeError("no static busybox: install busybox-static")
    if context.exists():
        shutil.rmtree(context)
    (context / "www").mkdir(parents=True)
    shutil.copy(busybox, context / "busybox")
    (context / "www" / "index.html").write_text(f"{version}\n")
    (context / "www" / "health").write_text("ok\n")
    (context / "app.war").write_bytes(war or f"war of {version}".encode())
    (context / "start.sh").write_text(start_script(healthy))
    (context / "Dockerfile").write_text(app_dockerfile())
    image, _ = client.images.build(path=str(context), tag=tag, rm=True)
    return str(image.id)


def front_conf(base: Path, port: int, address: str = APP_ADDRESS) -> str:
    tmp = base / "tmp"
    temps = "".join(
        f"    {kind}_temp_path {tmp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"pid {base / 'nginx.pid'};\nerror_log {base / 'error.log'};\nworker_processes 2;\n"
        "events { worker_connections 512; }\n"
        f"http {{\n    access_log off;\n{temps}    include upstream.conf;\n"
        f"    server {{\n        listen {address}:{port};\n"
        "        location / { proxy_pass http://app; }\n    }\n}\n"
    )


@dataclass
class FrontNginx:
    """The nginx in front of the app on the Docker host (this machine)."""

    base: Path
    binary: str
    address: str = APP_ADDRESS
    port: int = 0

    @property
    def conf(self) -> Path:
        return self.base / "conf"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def start(self) -> None:
        self.port = self.port or free_tcp_port(self.address)
        (self.base / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.mkdir(parents=True, exist_ok=True)
        (self.conf / "nginx.conf").write_text(front_conf(self.base, self.port, self.address))
        (self.conf / "upstream.conf").write_text(
            f"upstream app {{\n    server {self.address}:1;\n}}\n"
        )
        subprocess.run([self.binary, "-c", str(self.conf / "nginx.conf")], check=True, timeout=10)

    def stop(self) -> None:
        try:
            os.kill(int((self.base / "nginx.pid").read_text().strip()), signal.SIGQUIT)
        except (OSError, ValueError):
            pass

    def traffic(self, **more: Any) -> dict[str, Any]:
        """``apps.<app>.image.run.traffic`` for this nginx."""
        entry: dict[str, Any] = {
            "dir": str(self.conf),
            "reload": ["pkill", "-HUP", "--pidfile", str(self.base / "nginx.pid")],
            "url": self.url,
            "drain_s": 0.5,
        }
        entry.update(more)
        return entry

    def get(self) -> str | None:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as r:
                return str(r.read().decode().strip())
        except OSError:
            return None


@dataclass
class LoadLoop:
    """GETs ``url`` at ``rate`` requests per second in a thread (new connection each) and
    counts what failed; ``seen`` holds the bodies answered, in order of first answer."""

    url: str
    rate: float = 150
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _one(self) -> None:
        self.sent += 1
        try:
            with urllib.request.urlopen(self.url, timeout=5) as r:
                body = r.read().decode().strip()
                if r.status != 200:
                    raise OSError(f"HTTP {r.status}")
            if not self.seen or self.seen[-1] != body:
                self.seen.append(body)
        except Exception as e:
            self.failed += 1
            if len(self.errors) < 20:
                self.errors.append(f"{type(e).__name__}: {e}")

    def _loop(self) -> None:
        gap = 1 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._one()
            next_at += gap
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def __enter__(self) -> LoadLoop:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def image_front(tmp_path: Path) -> Iterator[FrontNginx]:
        """The nginx in front of an image app (started), stopped after the test."""
        from testbed.require import need_binary

        binary = need_binary("nginx", "nginx")
        tmp_path.chmod(0o755)
        front = FrontNginx(tmp_path / "front", binary)
        front.start()
        try:
            yield front
        finally:
            front.stop()
