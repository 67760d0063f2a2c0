"""The gateway as ``quayside up`` runs it: ``python -m quayside.gateway`` in a subprocess, with
the argv and environment of :mod:`quayside.stack.processes`, on a free loopback port, its own
data directory, ledger and inventory, and everything it prints (stdout and stderr, uvicorn's
loggers included) in one log file -- for tests of what the process writes and of how the
server treats raw connections.

No Prefect server is started: requests that would reach Prefect fail (the Prefect API URL
points at a closed port). Authentication, parsing, throttling and timeouts need none.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from quayside.settings import Settings
from quayside.stack.processes import gateway_process, platform_env

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """A gateway subprocess; :meth:`start` it, read :meth:`log_text`, :meth:`stop` it."""

    def __init__(self, home: Path, inventory: Path, extra_env: dict[str, str] | None = None):
        """Serve ``inventory`` with the ledger ``home/ledger.db`` (migrated by the caller)."""
        self.settings = Settings(
            home=home,
            database_url=f"sqlite:///{home / 'ledger.db'}",
            inventory_path=inventory,
            gateway_host="127.0.0.1",
            gateway_port=_free_port(),
            prefect_host="127.0.0.1",
            prefect_port=_free_port(),
        )
        self.extra_env = extra_env or {}
        self.log_path = home / "gateway-process.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.settings.gateway_url

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for raw sockets."""
        return self.settings.gateway_host, self.settings.gateway_port

    def start(self, timeout: float = 90) -> None:
        """Start the process and wait until ``/health`` answers.

        Raises:
            RuntimeError: it exited or did not answer in time (the message has its log).
        """
        spec = gateway_process(self.settings)
        env = platform_env(self.settings, PROJECT_DIR, os.environ)
        env.update(self.extra_env)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                spec.argv, env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the gateway exited ({self.process.returncode}):\n{self.log_text()}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the gateway did not answer /health in {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
