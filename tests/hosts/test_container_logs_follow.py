"""``quayside logs APP ENV --follow`` in its own process, as a user types it, against a
container released on the real Docker Engine: lines the container prints after the command
started appear (prefixed with the host), Ctrl-C (SIGINT) ends it quietly, and the container
stopping ends the follow by itself."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import PROJECT_DIR
from testbed.docker_engine import DockerEngine
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
        threading.Thread(target=self._read, daemon=True).start()

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
