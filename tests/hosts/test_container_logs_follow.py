"""``quayside logs APP ENV --follow`` in its own process, as a user types it, against a
container released on the real Docker Engine: lines the container prints after the command
started appear (prefixed with the host), Ctrl-C (SIGINT) ends it quietly, and the container
stopping ends the follow by itself. The same through the gateway process
(``GET /api/apps/shop/test/logs?follow=true``): a streamed response, ended by the container
stopping; a client that leaves mid-follow leaves no error behind."""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testbed import PROJECT_DIR
from testbed.docker_engine import DockerEngine
from testbed.gateway_process import GatewayProcess
from testbed.image_app import FrontNginx
from testbed.registry import RegistryPair
from tests.hosts.test_image_release_cli import _inventory
from tests.hosts.test_image_release_host import (  # noqa: F401  (fixture)
    HOST,
    Pushed,
    _job,
    _release,
    _run,
    app_images,
)

CONTAINER = "shop-test-v1-a"


class Follower:
    """``quayside logs shop test --follow`` running; its stdout lines collected as they come."""

    def __init__(self, tmp_path: Path, *more: str) -> None:
        environ = dict(os.environ) | {
            "QUAYSIDE_INVENTORY": str(tmp_path / "quayside.yaml"),
            "QUAYSIDE_HOME": str(tmp_path / "home"),
        }
        environ.pop("QUAYSIDE_TOKEN", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quayside.cli.main", "logs", "shop", "test", "--follow",
             *more],
            env=environ, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """The first output line containing ``text`` (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if text in line:
                    return line
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None and self.lines.empty():
                pytest.fail(f"no line with {text!r}; got {self.seen}; stderr {self.stderr()}")
            try:
                self.seen.append(self.lines.get(timeout=min(left, 1)))
            except queue.Empty:
                continue

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)  # it read to the end of stdout: now it can be closed
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def released(
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> Iterator[FrontNginx]:
    """v1 serving behind the front nginx, and quayside.yaml naming its engine."""
    client = docker_engine.client()
    run = _run(image_front, tmp_path)
    try:
        report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    finally:
        client.close()
    assert report.ok, report.message
    _inventory(tmp_path / "quayside.yaml", docker_engine.url, run, registries)
    yield image_front


def _say(engine: DockerEngine, text: str) -> None:
    """Make the serving container print ``text`` (written to its PID 1's stdout, which is
    what the engine logs)."""
    client = engine.client()
    try:
        done = client.containers.get(CONTAINER).exec_run(
            ["/bin/sh", "-c", 'echo "$0" > /proc/1/fd/1', text]
        )
        assert done.exit_code == 0, done.output
    finally:
        client.close()


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for f in started:
        f.stop()


def test_follow_prints_new_lines_and_ends_on_ctrl_c(
    released: FrontNginx, docker_engine: DockerEngine, tmp_path: Path, follower: list[Follower]
) -> None:
    before = f"before-{uuid.uuid4().hex[:8]}"
    _say(docker_engine, before)
    f = Follower(tmp_path, "--tail", "20")
    follower.append(f)
    assert f.wait_for(before).startswith(f"{HOST}: ")  # the tail: from before the command
    for n in range(3):  # printed by the container after the command started, in order
        marker = f"after-{n}-{uuid.uuid4().hex[:8]}"
        _say(docker_engine, marker)
        assert f.wait_for(marker) == f"{HOST}: {marker}"
    assert f.process.poll() is None  # still following

    f.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert f.process.wait(timeout=20) in (0, 130)
    err = f.stderr()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_follow_ends_when_the_container_stops(
    released: FrontNginx,
    docker_engine: DockerEngine,
    tmp_path: Path,
    follower: list[Follower],
) -> None:
    marker = f"last-{uuid.uuid4().hex[:8]}"
    _say(docker_engine, marker)
    f = Follower(tmp_path, "--tail", "1")
    follower.append(f)
    assert f.wait_for(marker) == f"{HOST}: {marker}"  # the tail printed: the stream is live

    client = docker_engine.client()
    try:
        client.containers.get(CONTAINER).stop(timeout=5)
    finally:
        client.close()
    assert f.process.wait(timeout=30) == 0
    assert "Traceback" not in f.stderr()


@pytest.fixture
def gateway(released: FrontNginx, tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    """The gateway as ``quayside up`` runs it, serving the app's quayside.yaml, and a token of
    a DEVELOPER (who may release shop/test)."""
    from quayside.auth import service
    from quayside.ledger.db import make_engine, migrate

    home = tmp_path / "gateway"
    home.mkdir(mode=0o700)
    process = GatewayProcess(home, tmp_path / "quayside.yaml")
    migrate(process.settings.database_url)
    ledger = make_engine(process.settings.database_url)
    try:
        service.create_user(ledger, "dev")
        service.grant_role(ledger, "dev", "DEVELOPER", space="default")
        token = service.create_token(ledger, "dev")
    finally:
        ledger.dispose()
    process.start()
    try:
        yield process, token
    finally:
        process.stop()


def _sockets(process: GatewayProcess) -> int:
    """How many sockets the gateway process holds open."""
    assert process.process is not None
    fds = Path(f"/proc/{process.process.pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed meanwhile
            continue
    return count


class HttpFollower:
    """``GET /api/apps/shop/test/logs?follow=true`` read line by line in a thread."""

    def __init__(self, gateway: GatewayProcess, token: str, tail: int) -> None:
        host, port = gateway.address
        self.connection = http.client.HTTPConnection(host, port, timeout=30)
        self.connection.request(
            "GET", f"/api/apps/shop/test/logs?follow=true&tail={tail}",
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        self.response = self.connection.getresponse()
        assert self.connection.sock is not None
        self.connection.sock.settimeout(None)  # a quiet container: reads wait
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                self.lines.put(line.decode().rstrip("\n"))
        except (OSError, http.client.HTTPException):
            pass  # we left
        finally:
            self.ended.set()

    def seen_within(self, text: str, timeout: float) -> str | None:
        """The first line containing ``text``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if text in line:
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=min(left, 1))
            except queue.Empty:
                continue
            self.seen.append(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        found = self.seen_within(text, timeout)
        if found is None:
            pytest.fail(f"no line with {text!r}; got {self.seen}")
        return found

    def leave(self) -> None:
        """Go away as a client does: the connection shut (a close() alone would wait for the
        reading thread's recv, and the gateway would see nothing)."""
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.ended.wait(10)  # the reading thread saw the end: now it can be closed
        self.connection.close()


def test_the_gateway_follows_until_the_client_leaves_or_the_container_stops(
    gateway: tuple[GatewayProcess, str], docker_engine: DockerEngine
) -> None:
    process, token = gateway
    refused = httpx.get(f"{process.url}/api/apps/shop/test/logs?follow=true", timeout=10)
    assert refused.status_code == 401
    idle = _sockets(process)

    before = f"gw-before-{uuid.uuid4().hex[:8]}"
    _say(docker_engine, before)
    first = HttpFollower(process, token, tail=1)
    try:
        assert first.response.status == 200
        assert first.response.getheader("content-type", "").startswith("text/plain")
        assert first.wait_for(before) == f"{HOST}: {before}"
        for n in range(3):
            marker = f"gw-after-{n}-{uuid.uuid4().hex[:8]}"
            _say(docker_engine, marker)
            assert first.wait_for(marker) == f"{HOST}: {marker}"
        assert _sockets(process) > idle  # the client's connection and the engine stream
    finally:
        first.leave()  # the client goes away mid-follow
    deadline = time.monotonic() + 15
    while _sockets(process) > idle:  # the gateway noticed and closed the engine stream
        assert time.monotonic() < deadline, (_sockets(process), idle)
        time.sleep(0.2)

    second = HttpFollower(process, token, tail=0)
    try:
        live = f"gw-live-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + 30
        while True:  # tail=0: printed until the stream is live
            _say(docker_engine, live)
            if second.seen_within(live, timeout=1) is not None:
                break
            assert time.monotonic() < deadline, second.seen
        client = docker_engine.client()
        try:
            client.containers.get(CONTAINER).stop(timeout=5)
        finally:
            client.close()
        assert second.ended.wait(30), "the response did not end when the container stopped"
    finally:
        second.leave()
    log = process.log_text()
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]
