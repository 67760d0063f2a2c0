"""The end-to-end CLI deploy benchmark's pure parts (bench/cli_deploy_e2e.py): the command a
user types, the environment of their shell, reading the run id and splitting the wall time,
and the results.json entry issue 16 names. No fleet, no server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench.cli_deploy_e2e import (
    GOAL_RATIO,
    IN_PROCESS_ONLY,
    PHASES,
    RSYNC_KEY,
    build_entry,
    children_cpu_s,
    cli_env,
    deploy_argv,
    median_phases,
    phases,
    quayside_argv,
    run_cli,
    run_id_of,
)
from bench.harness import Timing, ToolResult

RUN = "0b6a1c52-9f3e-4d21-a7a0-2f6f3c1d9e10"


def test_the_command_is_the_installed_entry_point(tmp_path: Path) -> None:
    (tmp_path / "quayside").write_text("#!/bin/sh\n")
    assert deploy_argv("e2e-0", "bench", "v1.0.1", bin_dir=tmp_path) == [
        str(tmp_path / "quayside"),
        "deploy",
        "e2e-0",
        "bench",
        "v1.0.1",
    ]


def test_without_an_entry_point_the_module_runs(tmp_path: Path) -> None:
    assert quayside_argv("deploy", "a", "e", "r", bin_dir=tmp_path) == [
        sys.executable,
        "-m",
        "quayside.cli.main",
        "deploy",
        "a",
        "e",
        "r",
    ]


def test_the_cli_gets_the_users_token_and_none_of_the_benchmarks_own_settings() -> None:
    platform_env = {
        "PREFECT_API_URL": "http://127.0.0.1:4200/api",
        "QUAYSIDE_HOME": "/h",
        **{key: "set by the bench" for key in IN_PROCESS_ONLY},
    }
    env = cli_env(platform_env, "qs_token")
    assert env["QUAYSIDE_TOKEN"] == "qs_token"
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert env["QUAYSIDE_HOME"] == "/h"
    assert not set(IN_PROCESS_ONLY) & set(env)
    assert "PREFECT_LOGGING_LEVEL" in IN_PROCESS_ONLY  # the CLI follows logs at INFO


def test_the_run_id_comes_from_the_started_line() -> None:
    out = f"started shiny-otter (git-deploy): http://127.0.0.1:4200/runs/flow-run/{RUN}\n"
    assert run_id_of(out) == RUN
    with pytest.raises(ValueError, match="no run URL"):
        run_id_of("quayside: error\n")


def test_phases_split_the_wall_time_at_each_state_and_add_up() -> None:
    history = [("SCHEDULED", 100.2), ("PENDING", 101.0), ("RUNNING", 101.5), ("COMPLETED", 102.3)]
    split = phases(100.0, history, 102.7)
    assert split == {
        "submit_s": 0.2,
        "pickup_s": 0.8,
        "start_s": 0.5,
        "run_s": 0.8,
        "after_final_s": 0.4,
    }
    assert list(split) == list(PHASES)
    assert sum(v for v in split.values() if v is not None) == pytest.approx(2.7)


def test_a_phase_without_its_states_is_none() -> None:
    assert phases(100.0, [("SCHEDULED", 100.2), ("FAILED", 100.9)], 101.0) == {
        "submit_s": 0.2,
        "pickup_s": None,
        "start_s": None,
        "run_s": None,
        "after_final_s": 0.1,
    }
    assert set(phases(100.0, [], 101.0).values()) == {None}


def test_median_phases_skip_runs_without_the_phase() -> None:
    runs = [
        {"submit_s": 1.0, "run_s": 1.0},
        {"submit_s": 3.0, "run_s": None},
        {"submit_s": 2.0, "run_s": 2.0},
    ]
    medians = median_phases(runs)
    assert medians["submit_s"] == 2.0
    assert medians["run_s"] == 1.5
    assert medians["pickup_s"] is None


def tool(key: str, seconds: float) -> ToolResult:
    return ToolResult(key, key, f"{key} work", Timing(seconds, [seconds] * 3))


def test_the_entry_has_the_figures_issue_16_names() -> None:
    run_phases = [{"submit_s": 0.4, "pickup_s": 0.6, "start_s": 0.5, "run_s": 0.8}] * 3
    entry = build_entry(
        [tool("quayside", 2.5), tool(RSYNC_KEY, 7.6)],
        run_phases,
        command_cpu_s=[0.9, 1.1, 1.0],
        hosts=20,
        files=5000,
        changed_file="app/module_07/part_042.dat",
        repeat=3,
        machine={"cores": 2},
    )
    assert entry["quayside_s"] == 2.5
    assert entry["ratio_vs_parallel_rsync_link_dest"] == round(7.6 / 2.5, 2)
    assert entry["goal_ratio"] == GOAL_RATIO
    assert entry["meets_goal"] is True
    assert entry["start_s"] == 0.5
    assert entry["command_cpu_s"] == 1.0
    assert entry["phases_runs"] == run_phases
    assert entry["command"] == "uv run python -m bench cli_deploy_e2e"
    slow = build_entry(
        [tool("quayside", 3.0), tool(RSYNC_KEY, 7.5)],
        [],
        hosts=20,
        files=5000,
        changed_file="x",
        repeat=3,
        machine={},
    )
    assert slow["meets_goal"] is False
    assert slow["submit_s"] is None
    assert slow["command_cpu_s"] is None


def test_an_unmeasured_command_has_no_verdict() -> None:
    entry = build_entry(
        [
            ToolResult("quayside", "q", "q", not_measured="the platform did not start"),
            tool(RSYNC_KEY, 7.5),
        ],
        [],
        hosts=20,
        files=5000,
        changed_file="x",
        repeat=3,
        machine={},
    )
    assert entry["quayside_s"] is None
    assert entry["ratio_vs_parallel_rsync_link_dest"] is None
    assert entry["meets_goal"] is None


def test_python_m_bench_knows_the_benchmark() -> None:
    assert cli.plan(["cli_deploy_e2e"]) == {"cli_deploy_e2e": ["cli_deploy_e2e"]}


def test_children_cpu_counts_a_finished_command() -> None:
    before = children_cpu_s()
    run = run_cli([sys.executable, "-c", "sum(range(3_000_000))"], {"PATH": "/usr/bin:/bin"})
    assert run.cpu_s > 0
    assert children_cpu_s() >= before + run.cpu_s - 0.01
    assert run.ended_at >= run.started_at


def test_a_failing_command_is_an_error_with_its_output() -> None:
    with pytest.raises(RuntimeError, match="exited with 3: boom"):
        run_cli([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], {})
