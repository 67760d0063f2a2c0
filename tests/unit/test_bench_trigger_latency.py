"""Fast tests of bench/trigger_latency.py's pure helpers and of the launcher's pieces that need
no platform: percentiles, state times, deliveries, the work pool command and template."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.trigger_latency import (
    FIXTURE,
    INVENTORY,
    SECRET_ENV,
    Trigger,
    delivery,
    percentile,
    state_times,
    summary,
)
from quayside.inventory import load_inventory
from testbed import PROJECT_DIR


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1
    assert percentile([4, 1, 3, 2], 100) == 4
    assert percentile([5.0], 95) == 5.0
    values = list(range(1, 51))  # 1..50
    assert percentile(values, 95) == pytest.approx(47.55)
    assert percentile(values, 50) == pytest.approx(25.5)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_bad_q(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary() -> None:
    assert summary([3.0, 1.0, 2.0]) == {
        "p50_s": 2.0,
        "p95_s": 2.9,
        "min_s": 1.0,
        "max_s": 3.0,
        "n": 3,
    }


def test_state_times_keep_the_first_of_each_type() -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    history = [
        ("RUNNING", t0 + timedelta(seconds=3)),
        ("SCHEDULED", t0),
        ("PENDING", t0 + timedelta(seconds=1)),
        ("RUNNING", t0 + timedelta(seconds=9)),
    ]
    times = state_times(history)
    assert times["RUNNING"] - times["SCHEDULED"] == 3
    trigger = Trigger("qa-1", t0.timestamp() - 0.5, "id", times)
    assert trigger.latency_s == 3.5
    assert trigger.submit_s == 1.5
    assert trigger.start_s == 2.0
    assert Trigger("qa-2", 0.0, "id").latency_s is None


def test_delivery_changes_tag_and_delivery_ids_only() -> None:
    fixture = json.loads(FIXTURE.read_text())
    hook = delivery(fixture, "qa-7")
    assert hook["body"]["ref"] == "refs/tags/qa-7"
    assert hook["body"]["checkout_sha"] == fixture["body"]["checkout_sha"]
    assert hook["headers"]["X-Gitlab-Token"] == fixture["headers"]["X-Gitlab-Token"]
    assert hook["headers"]["Idempotency-Key"] != fixture["headers"]["Idempotency-Key"]
    assert fixture["body"]["ref"] == "refs/tags/release-v1.0.0"  # not modified


def test_bench_inventory_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "s")
    path = tmp_path / "quayside.yaml"
    path.write_text(INVENTORY)
    inventory = load_inventory(path)
    assert [r.pattern for r in inventory.apps["web"].tag_rules] == ["^qa-"]


# -- the pool's command ---------------------------------------------------------------------------


def test_pool_command_is_the_launcher_unless_turned_off() -> None:
    from quayside.deployments.register import (
        flow_run_command,
        launcher_command,
        process_job_template,
    )

    assert launcher_command("/venv/bin/python") == "/venv/bin/python -m quayside.stack.launcher"
    assert flow_run_command({}) == launcher_command()
    assert flow_run_command({"QUAYSIDE_FORKSERVER": "0"}) is None
    template = process_job_template("x -m quayside.stack.launcher")
    assert template["job_configuration"]["command"] == "{{ command }}"
    assert template["variables"]["properties"]["command"]["default"].endswith("launcher")


def test_launcher_without_a_fork_server_runs_the_engine_itself(tmp_path: Path) -> None:
    """No socket: the launcher execs ``python -m prefect.engine`` (here: an invalid run id,
    which the engine reports and exits 1)."""
    env = dict(os.environ, QUAYSIDE_HOME=str(tmp_path), PREFECT__FLOW_RUN_ID="not-a-uuid")
    done = subprocess.run(
        [sys.executable, "-m", "quayside.stack.launcher"],
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert b"Invalid flow run id" in done.stderr + done.stdout


def test_fork_server_relays_output_exit_code_and_kill(tmp_path: Path) -> None:
    """A fork server whose child runs a tiny stand-in for ``prefect.engine`` (a module on
    PYTHONPATH): the launcher gets the child's output, exit code and forwards SIGTERM; a
    child killed by SIGKILL ends the launcher by SIGKILL too."""
    fake = tmp_path / "fakeengine"
    (fake / "prefect").mkdir(parents=True)
    (fake / "prefect" / "__init__.py").write_text("")
    (fake / "prefect" / "context.py").write_text("def refresh_global_settings_context(): pass\n")
    (fake / "prefect" / "engine.py").write_text(
        "import os, sys, time\n"
        "if __name__ == '__main__':\n"
        "    print('engine for', os.environ['PREFECT__FLOW_RUN_ID'], os.getcwd(), flush=True)\n"
        "    if os.environ.get('SLEEP'):\n"
        "        print('pid', os.getpid(), flush=True)\n"
        "        time.sleep(60)\n"
        "    sys.exit(int(os.environ.get('CODE', '0')))\n"
    )
    (fake / "deployments").mkdir()
    (fake / "deployments" / "__init__.py").write_text("")
    (fake / "deployments" / "catalogue.py").write_text("CATALOGUE = ()\n")
    project = PROJECT_DIR
    env = dict(
        os.environ,
        QUAYSIDE_HOME=str(tmp_path / "home"),
        PYTHONPATH=f"{fake}:{project}",
        PREFECT__FLOW_RUN_ID="run-1",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "quayside.stack.forkserver"],
        env=env,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        sock = tmp_path / "home" / "run" / "launcher.sock"
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists()
        launch = [sys.executable, "-m", "quayside.stack.launcher"]
        done = subprocess.run(
            launch, env=dict(env, CODE="3"), cwd=tmp_path, capture_output=True, timeout=60
        )
        assert done.returncode == 3
        assert f"engine for run-1 {tmp_path}" in done.stdout.decode()
        sleeper = subprocess.Popen(launch, env=dict(env, SLEEP="1"), stdout=subprocess.PIPE)
        assert sleeper.stdout is not None
        assert b"engine for" in sleeper.stdout.readline()
        sleeper.send_signal(signal.SIGTERM)
        assert sleeper.wait(timeout=30) == -signal.SIGTERM
        # the run's process killed outright (an OOM kill): the launcher dies by the same
        # signal and says so, instead of "status code 1"
        victim = subprocess.Popen(
            launch, env=dict(env, SLEEP="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert victim.stdout is not None and victim.stderr is not None
        assert b"engine for" in victim.stdout.readline()
        os.kill(int(victim.stdout.readline().split()[1]), signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        assert b"the flow run was killed by SIGKILL" in victim.stderr.read()
        # a preloaded project file changes: this run falls back to a fresh engine process
        # (new code) and the server reloads itself
        catalogue = fake / "deployments" / "catalogue.py"
        os.utime(catalogue, ns=(time.time_ns(), time.time_ns() + 10**9))
        done = subprocess.run(
            launch, env=dict(env, CODE="4"), cwd=tmp_path, capture_output=True, timeout=120
        )
        assert done.returncode == 4
        assert "engine for run-1" in done.stdout.decode()
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists() and server.poll() is None
        done = subprocess.run(
            launch, env=dict(env, CODE="5"), cwd=tmp_path, capture_output=True, timeout=60
        )
        assert done.returncode == 5
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_skipped_configuration_keeps_its_earlier_figures() -> None:
    from bench.trigger_latency import PREFECT_DEFAULT, SHIPPED, earlier

    previous = {
        "measured_at": "2026-01-01T00:00:00+00:00",
        "runs_s": {"prefect_default": [10.0, 12.0, 14.0]},
        "configurations": {"prefect_default": {"p50_s": 12.0, "p95_s": 13.8, "n": 3}},
    }
    tool, stats = earlier(PREFECT_DEFAULT, previous, "--skip")
    assert tool.timing is not None and tool.timing.median_s == 12.0
    assert stats["measured_at"] == "2026-01-01T00:00:00+00:00" and stats["p95_s"] == 13.8
    missing, none = earlier(SHIPPED, previous, "--skip")
    assert missing.timing is None and missing.not_measured == "--skip" and none == {}


def test_flow_run_command_can_be_set_explicitly() -> None:
    from quayside.deployments.register import flow_run_command

    assert flow_run_command({"QUAYSIDE_FLOW_RUN_COMMAND": "py -m prefect.engine"}) == (
        "py -m prefect.engine"
    )
    assert flow_run_command({"QUAYSIDE_FLOW_RUN_COMMAND": ""}) is None
