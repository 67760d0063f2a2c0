"""The flow-run launcher and the work pool's command, with no platform: the pool runs
``python -m quayside.stack.launcher`` unless turned off; without a fork server the launcher execs
the engine itself; through a fork server it relays the run's output and exit code, forwards
SIGTERM, and a run killed by a signal (SIGKILL: an OOM kill) ends the launcher by that signal
and says so, not "status code 1" (issue 15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testbed import PROJECT_DIR

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


def test_flow_run_command_can_be_set_explicitly() -> None:
    from quayside.deployments.register import flow_run_command

    assert flow_run_command({"QUAYSIDE_FLOW_RUN_COMMAND": "py -m prefect.engine"}) == (
        "py -m prefect.engine"
    )
    assert flow_run_command({"QUAYSIDE_FLOW_RUN_COMMAND": ""}) is None
