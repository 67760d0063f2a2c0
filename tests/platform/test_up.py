"""`quayside up` for real: it comes up, runs a deployment, stops on Ctrl-C without leaving
processes behind, refuses a second instance or a taken port, and a second `up` on the same
data directory finds everything the first one recorded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from quayside.ledger.db import make_engine
from quayside.ledger.models import ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.runs import follow_run, read_run, start_run
from testbed.platform import PROJECT_DIR, Platform

pytestmark = [pytest.mark.xdist_group("up"), pytest.mark.prefect]


def processes_with_home(home: Path) -> list[int]:
    """PIDs whose environment has QUAYSIDE_HOME=home (everything `up` started)."""
    needle = f"QUAYSIDE_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_up_runs_stops_cleanly_and_keeps_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    inventory = tmp_path / "quayside.yaml"
    inventory.write_text(
        "hosts:\n  here: {address: 127.0.0.1, transport: local}\ngroups:\n  demo: [here]\n"
    )
    first = Platform(home, inventory)
    first.start()
    try:
        monkeypatch.setenv("PREFECT_API_URL", first.api_url)
        monkeypatch.setenv("PREFECT_API_AUTH_STRING", first.auth_string)
        handle = start_run("hello-release", {"group": "demo", "command": ["true"]})
        for _ in follow_run(handle.id, poll_s=0.5, timeout_s=120):
            pass
        assert read_run(handle.id).state_type == "COMPLETED"

        # a second `up` on the same data directory is refused at once, naming the directory
        second = run_cli(["up"], first.env)
        assert second.returncode == 1
        assert f"already running on {home}" in second.stderr
        assert "Traceback" not in second.stderr
        # the API auth string is not rotated under a running platform
        busy = run_cli(["api-auth", "rotate"], first.env)
        assert busy.returncode == 1 and f"`quayside up` is running on {home}" in busy.stderr
    finally:
        assert first.stop() == 0
    assert processes_with_home(home) == []
    output = first.output.read_text()
    assert "stopped" in output

    old_auth = first.auth_string
    rotated = run_cli(["api-auth", "rotate"], first.env)
    assert rotated.returncode == 0, rotated.stderr
    assert first.auth_string != old_auth

    again = Platform(home, inventory)
    again.start()
    try:
        monkeypatch.setenv("PREFECT_API_URL", again.api_url)
        monkeypatch.setenv("PREFECT_API_AUTH_STRING", again.auth_string)
        assert read_run(handle.id).state_type == "COMPLETED"
        # the restarted platform takes the new string only
        flows = f"{again.api_url}/flows/filter"
        for auth, expected in ((old_auth, 401), (again.auth_string, 200)):
            answer = httpx.post(flows, json={}, auth=httpx.BasicAuth(*auth.split(":", 1)))
            assert answer.status_code == expected
        engine = make_engine(f"sqlite:///{home / 'ledger.db'}")
        release = next(
            r for r in list_releases(engine, "hello", "demo") if r.flow_run_id == handle.id
        )
        assert release.status == ReleaseStatus.succeeded
    finally:
        assert again.stop() == 0
    assert processes_with_home(home) == []


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        platform = Platform(tmp_path / "home", tmp_path / "inv.yaml")
        env = {**platform.env, "QUAYSIDE_GATEWAY_PORT": str(port)}
        result = run_cli(["up"], env)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} for the gateway is already in use" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_with_home(tmp_path / "home") == []


def test_up_refuses_a_task_run_flush_interval_that_would_spin_before_touching_anything(
    tmp_path: Path,
) -> None:
    """Below 1 s Prefect's task-run recorder busy-loops (it sleeps ``int()`` of the value):
    ``up`` names the setting, starts nothing and creates no data directory."""
    platform = Platform(tmp_path / "home", tmp_path / "inv.yaml")
    env = {**platform.env, "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "0.5"}
    result = run_cli(["up"], env)
    assert result.returncode == 1
    assert "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL='0.5'" in result.stderr
    assert "1 or more" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home").exists()
    assert processes_with_home(tmp_path / "home") == []


def test_up_refuses_a_data_directory_other_users_can_read(tmp_path: Path) -> None:
    """A data directory others can enter (0755, what `mkdir` gives) would expose Prefect's
    database and its Secret-block key: `up` names it, its mode and the fix, starts nothing
    and writes nothing into it."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    platform = Platform(home, tmp_path / "inv.yaml")
    result = run_cli(["up"], platform.env)
    assert result.returncode == 1
    assert f"data directory {home} has mode 0755, open to other users" in result.stderr
    assert f"chmod 700 {home}" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(home.iterdir()) == []
    assert processes_with_home(home) == []
