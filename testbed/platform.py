"""A real Quayside platform for tests and benchmarks: ``quayside up`` in a subprocess with its
own data directory and free ports (Prefect server + UI on SQLite, a worker, the gateway).

The core (:class:`Platform`) needs no pytest. The session fixture ``platform`` starts one per
xdist worker that needs it. Tests that use it are in one of two xdist groups,
``xdist_group("platform")`` or ``xdist_group("platform-2")`` (modules split by measured run
time): ``-n 2 --dist loadgroup`` runs each group whole on one worker, so a run starts two
platforms, one per group, and both workers finish at about the same time. Each platform has its
own data directory and free ports; nothing is shared between them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

PROJECT_DIR = Path(__file__).resolve().parent.parent


#: the DingTalk robot appSecret of the session platform's gateway (tests sign with it)
PLATFORM_DINGTALK_SECRET = "platform-test-app-secret-not-real"


def count_runs(api_url: str, idempotency_key: str, auth_string: str | None = None) -> int:
    """How many flow runs the Prefect API at ``api_url`` holds with ``idempotency_key``
    (authenticating with ``auth_string``, else as :func:`quayside.runs.prefect_client` does:
    PREFECT_API_AUTH_STRING)."""
    import asyncio

    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey

    from quayside.runs import prefect_client

    async def go() -> int:
        client = (
            PrefectClient(api=api_url, auth_string=auth_string)
            if auth_string
            else prefect_client(api_url)
        )
        async with client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    idempotency_key=FlowRunFilterIdempotencyKey(any_=[idempotency_key])
                )
            )
            return len(runs)

    return asyncio.run(go())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Platform:
    """``quayside up`` on ``home`` with free ports; ``inventory`` is read by flow runs."""

    def __init__(self, home: Path, inventory: Path, extra_env: dict[str, str] | None = None):
        self.home = home
        self.inventory = inventory
        self.prefect_port = free_port()
        self.gateway_port = free_port()
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.output = home / "up.out"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def auth_string(self) -> str:
        """The Prefect API's auth string `up` generated into the data directory."""
        return (self.home / "api-auth").read_text().strip()

    def client(self) -> PrefectClient:
        """A Prefect client of this platform's API, authenticated."""
        from prefect.client.orchestration import PrefectClient

        return PrefectClient(api=self.api_url, auth_string=self.auth_string)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a client of this platform (CLI subprocesses, quayside.runs): no
        auth string (another platform's may be in os.environ); the CLI reads this one's from
        the data directory, as on the platform host."""
        env = dict(os.environ)
        env.pop("PREFECT_API_AUTH_STRING", None)
        env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
        env.update(
            {
                "QUAYSIDE_HOME": str(self.home),
                "QUAYSIDE_INVENTORY": str(self.inventory),
                "QUAYSIDE_PREFECT_PORT": str(self.prefect_port),
                "QUAYSIDE_GATEWAY_PORT": str(self.gateway_port),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_HOME": str(self.home / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": "1",
            }
        )
        env.pop("QUAYSIDE_DATABASE_URL", None)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 240) -> None:
        # `up` refuses a data directory other users can reach; this one is the harness's own
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.chmod(0o700)
        out = self.output.open("ab")
        offset = out.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quayside.cli.main", "up"],
            env=self.env,
            cwd=PROJECT_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"quayside up exited with {self.process.returncode}:\n"
                    + self.output.read_text()[-3000:]
                )
            if b"Quayside is up" in self.output.read_bytes()[offset:]:
                self._check(self.api_url + "/health")
                self._check(self.gateway_url + "/health")
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("quayside up did not come up:\n" + self.output.read_text()[-3000:])

    @staticmethod
    def _check(url: str) -> None:
        response = httpx.get(url, timeout=5)
        response.raise_for_status()

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C (SIGINT) ``up`` and wait; returns its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        code = self.process.returncode
        self.process = None
        return code


@pytest.fixture(scope="session")
def platform_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quayside-home")


@pytest.fixture(scope="session")
def platform_inventory(platform_home: Path) -> Path:
    """The inventory file flow runs read; tests write what they need into it."""
    path = platform_home / "quayside.yaml"
    path.write_text("hosts: {}\n")
    return path


@pytest.fixture(scope="session")
def platform(platform_home: Path, platform_inventory: Path) -> Iterator[Platform]:
    """A running platform; ``PREFECT_API_URL`` and ``PREFECT_API_AUTH_STRING`` point at it for
    in-process clients."""
    p = Platform(
        platform_home,
        platform_inventory,
        extra_env={"QUAYSIDE_DINGTALK_APP_SECRET": PLATFORM_DINGTALK_SECRET},
    )
    p.start()
    _SESSION_PLATFORM.append(p)
    keys = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "QUAYSIDE_HOME", "QUAYSIDE_INVENTORY")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["PREFECT_API_URL"] = p.api_url
    os.environ["PREFECT_API_AUTH_STRING"] = p.auth_string
    os.environ["QUAYSIDE_HOME"] = str(p.home)
    os.environ["QUAYSIDE_INVENTORY"] = str(p.inventory)
    _refresh_prefect_settings()
    try:
        yield p
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_prefect_settings()
        _SESSION_PLATFORM.remove(p)
        p.stop()


#: the session ``platform`` of this process, once started (:func:`pytest_runtest_teardown`)
_SESSION_PLATFORM: list[Platform] = []
#: what must be done while the session platform still runs, before the hook stops it
_BEFORE_STOP: list[Callable[[], None]] = []


@contextmanager
def settled_before_stop(settle: Callable[[], None]) -> Iterator[None]:
    """Within the block, ``settle`` is called before the session platform is stopped between
    tests (a fixture of a wider scope that uses the platform: waiting for the runs its tests
    started, say, which its own teardown would otherwise do against a stopped server)."""
    _BEFORE_STOP.append(settle)
    try:
        yield
    finally:
        _BEFORE_STOP.remove(settle)


def _group(item: pytest.Item) -> object:
    marker = item.get_closest_marker("xdist_group")
    if marker is None:
        return None
    return marker.args[0] if marker.args else marker.kwargs.get("name")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the session platform once its group's tests are done: ``--dist loadgroup`` runs a
    group's tests one after the other on one worker, and an idle platform (its server, the
    worker polling every second) kept about 6% of a core busy for the rest of the session.
    A later test that asks for it again finds it started again on the same data directory
    (:func:`pytest_runtest_setup`)."""
    if not _SESSION_PLATFORM or "platform" not in item.fixturenames:  # type: ignore[attr-defined]
        return
    if nextitem is not None and (
        _group(nextitem) == _group(item) or "platform" in nextitem.fixturenames  # type: ignore[attr-defined]
    ):
        return
    for settle in list(_BEFORE_STOP):
        settle()
    _SESSION_PLATFORM[0].stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start the session platform again for a test that needs it after it was stopped."""
    if _SESSION_PLATFORM and "platform" in item.fixturenames:  # type: ignore[attr-defined]
        stopped = _SESSION_PLATFORM[0]
        if stopped.process is None:
            stopped.start()


def _refresh_prefect_settings() -> None:
    """Make Prefect's process-wide settings follow os.environ: they were read when prefect
    was imported, and a thread started without a settings context (a library's background
    thread) falls back to them - without the platform's API URL it would start an ephemeral
    server (refused in tests: see conftest.py)."""
    import prefect.context

    prefect.context.refresh_global_settings_context()
