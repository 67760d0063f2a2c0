"""The benchmark harness (bench/harness.py): timing, ratios, results.json merging and the
Markdown report. No fleet, no server: these run in milliseconds."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import harness
from bench.git_deploy.app import file_layout
from bench.harness import (
    Timing,
    ToolResult,
    make_entry,
    measure,
    measure_steps,
    merge_results,
    ratio,
    render_markdown,
    run_argv,
)

MACHINE = {"cores": 2, "python": "3.11.7"}
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def entry(**tools: float | None) -> dict:
    results = []
    for key, seconds in tools.items():
        if seconds is None:
            results.append(ToolResult(key, key.title(), f"{key} work", not_measured="no flow yet"))
        else:
            timing = Timing(seconds, [seconds + 1, seconds, seconds - 1])
            results.append(ToolResult(key, key.title(), f"{key} work", timing))
    return make_entry(
        results,
        title="Fan-out",
        description="Deploy to every host.",
        command="uv run python -m bench git_deploy",
        repeat=3,
        extra={"hosts": 20},
        notes=["pyenv costs every SSH command 0.1 s"],
        measured_at=WHEN,
        machine=MACHINE,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_measure_takes_the_median_and_excludes_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    durations = iter([3.0, 1.0, 2.0])
    setups: list[float] = []

    def setup() -> None:
        setups.append(clock.now)
        clock.now += 100  # would dominate every run if it were timed

    def work() -> int:
        clock.now += next(durations)
        return len(setups)

    timing = measure(work, repeat=3, setup=setup)

    assert timing.runs_s == [3.0, 1.0, 2.0]
    assert timing.median_s == 2.0
    assert timing.outputs == [1, 2, 3]  # setup ran before each call
    assert len(setups) == 3


def test_measure_median_of_an_even_count(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    durations = iter([4.0, 1.0, 2.0, 8.0])

    def work() -> None:
        clock.now += next(durations)

    assert measure(work, repeat=4).median_s == 3.0


def test_measure_steps_times_each_step_after_one_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    events: list[str] = []
    deploy = iter([10.0, 30.0, 20.0])
    back = iter([1.0, 3.0, 2.0])

    def setup() -> None:
        events.append("setup")
        clock.now += 500

    def step(name: str, durations: Iterator[float]) -> Callable[[], str]:
        def run() -> str:
            events.append(name)
            clock.now += next(durations)
            return name

        return run

    def check() -> None:
        events.append("check")
        clock.now += 50  # untimed

    incr, rollback = measure_steps(
        [step("deploy", deploy), step("rollback", back)], repeat=3, setup=setup, checks=[check]
    )

    assert incr.runs_s == [10.0, 30.0, 20.0] and incr.median_s == 20.0
    assert rollback.runs_s == [1.0, 3.0, 2.0] and rollback.median_s == 2.0
    assert rollback.outputs == ["rollback"] * 3
    assert events[:4] == ["setup", "deploy", "check", "rollback"]
    assert events.count("setup") == 3


def test_measure_refuses_no_runs() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        measure(lambda: None, repeat=0)


def test_ratio_is_tool_time_over_quayside_time() -> None:
    assert ratio(19.0, 4.1) == 4.63  # above 1: Quayside is faster
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(None, 4.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None


def test_entry_has_medians_ratios_runs_and_context() -> None:
    e = entry(quayside=4.0, ansible_forks5=20.0, serial_rsync=49.0)

    assert e["quayside_s"] == 4.0
    assert e["ansible_forks5_s"] == 20.0
    assert e["ratio_vs_ansible_forks5"] == 5.0
    assert e["ratio_vs_serial_rsync"] == 12.25
    assert "ratio_vs_quayside" not in e
    assert e["runs_s"]["ansible_forks5"] == [21.0, 20.0, 19.0]
    assert e["hosts"] == 20
    assert e["measured_at"] == "2024-05-01T12:00:00+00:00"
    assert e["machine"] == MACHINE
    assert e["command"] == "uv run python -m bench git_deploy"
    assert e["not_measured"] == {}
    json.dumps(e)  # serialisable as is


def test_a_tool_not_measured_has_no_time_and_no_ratio() -> None:
    e = entry(quayside=None, parallel_rsync=21.0)

    assert e["quayside_s"] is None
    assert e["parallel_rsync_s"] == 21.0
    assert e["ratio_vs_parallel_rsync"] is None
    assert e["not_measured"] == {"quayside": "no flow yet"}
    assert "quayside" not in e["runs_s"]


def test_a_tool_needs_a_time_or_a_reason() -> None:
    with pytest.raises(ValueError, match="not_measured"):
        make_entry(
            [ToolResult("quayside", "Q", "")], title="t", description="", command="c", repeat=3
        )


def test_merge_keeps_other_benchmarks_and_replaces_the_named_one(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(
        json.dumps(
            {
                "image_promote": {"quayside_s": 1.0, "skopeo_s": 3.0},
                "git_deploy_fanout": {"quayside_s": 99.0, "stale": True},
            }
        )
    )

    merged = merge_results({"git_deploy_fanout": entry(quayside=4.0, serial_rsync=49.0)}, path)

    on_disk = json.loads(path.read_text())
    assert on_disk == merged
    assert on_disk["image_promote"] == {"quayside_s": 1.0, "skopeo_s": 3.0}
    assert on_disk["git_deploy_fanout"]["quayside_s"] == 4.0
    assert "stale" not in on_disk["git_deploy_fanout"]
    assert list(on_disk) == ["image_promote", "git_deploy_fanout"]


def test_merge_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "results.json"
    merge_results({"git_deploy_rollback": entry(quayside=1.0, ssh_loop_parallel=2.0)}, path)
    assert json.loads(path.read_text())["git_deploy_rollback"]["ratio_vs_ssh_loop_parallel"] == 2.0


def test_merge_refuses_a_file_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="JSON object"):
        merge_results({"x": {}}, path)


def test_markdown_has_a_table_per_benchmark_and_the_reproduce_command() -> None:
    md = render_markdown(
        {
            "git_deploy_fanout": entry(quayside=4.0, ansible_forks5=20.0),
            "git_deploy_rollback": entry(quayside=None, ssh_loop_parallel=1.5),
        }
    )

    assert md.startswith("# Benchmarks\n")
    assert "`make bench`" in md
    assert "`uv run python -m bench git_deploy`" in md
    assert "## Fan-out (`git_deploy_fanout`)" in md
    assert "## Fan-out (`git_deploy_rollback`)" in md
    assert (
        "| tool | what the time includes | median (s) | runs (s) | ratio: tool / Quayside |" in md
    )
    assert "| Quayside | quayside work | 4.00 | 5.00, 4.00, 3.00 | 1 (reference) |" in md
    assert "| Ansible_Forks5 | ansible_forks5 work | 20.00 | 21.00, 20.00, 19.00 | 5.00 |" in md
    # not measured: no number, the reason instead
    assert "| Quayside | quayside work | — | not measured: no flow yet | — |" in md
    assert "| Ssh_Loop_Parallel | ssh_loop_parallel work | 1.50 | 2.50, 1.50, 0.50 | — |" in md
    assert "- `hosts`: 20" in md
    assert "- pyenv costs every SSH command 0.1 s" in md
    assert "median of 3 runs" in md


def test_markdown_adds_static_context_per_benchmark() -> None:
    md = render_markdown(
        {"git_deploy_fanout": entry(quayside=4.0)}, {"git_deploy_fanout": "Goal: 5x Ansible."}
    )
    assert "Goal: 5x Ansible." in md
    assert md.index("Goal: 5x Ansible.") < md.index("Reproduce: ")


def test_render_only_rewrites_the_markdown_from_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results.json"
    markdown = tmp_path / "benchmarks.md"
    merge_results({"git_deploy_fanout": entry(quayside=4.0, serial_rsync=49.0)}, results)
    monkeypatch.setattr(cli, "RESULTS_PATH", results)
    monkeypatch.setattr(cli, "MARKDOWN_PATH", markdown)

    assert cli.main(["--render"]) == 0

    text = markdown.read_text()
    assert "| Serial_Rsync | serial_rsync work | 49.00 | 50.00, 49.00, 48.00 | 12.25 |" in text
    assert "Reference figures from issue 3" in text  # bench.git_deploy.CONTEXT


def test_markdown_flags_a_busy_machine() -> None:
    quiet = entry(quayside=1.0)
    busy = entry(quayside=1.0)
    busy["machine"] = {"cores": 2, "load_avg_1m": 19.7}
    assert "Busy machine" not in render_markdown({"x": quiet})
    assert "load average was 19.7 on 2 cores" in render_markdown({"x": busy})


def test_markdown_escapes_pipes_in_cells() -> None:
    e = entry(quayside=1.0)
    e["tools"]["quayside"]["includes"] = "a | b"
    assert "a \\| b" in render_markdown({"x": e})


def test_cli_plan_accepts_modules_and_single_results() -> None:
    everything = cli.plan([])
    assert set(everything) == set(cli.BENCHMARKS)
    assert everything["git_deploy"] == [
        "git_deploy_fanout",
        "git_deploy_incremental",
        "git_deploy_rollback",
    ]
    assert cli.plan(["git_deploy"])["git_deploy"][0] == "git_deploy_fanout"
    assert cli.plan(["git_deploy_rollback"]) == {"git_deploy": ["git_deploy_rollback"]}
    with pytest.raises(KeyError):
        cli.plan(["nope"])


def test_cli_refuses_publishing_fewer_than_three_runs() -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["git_deploy", "--repeat", "1"])
    assert cli.parse_args(["git_deploy", "--repeat", "1", "--no-save"]).repeat == 1


def test_app_layout_is_deterministic_and_sized_as_specified() -> None:
    layout = file_layout()
    assert layout == file_layout()
    assert len(layout) == 5000
    assert sum(size for _, size in layout) == 50_000_000
    assert len({path for path, _ in layout}) == 5000


def test_run_argv_reports_the_exit_code_and_output(tmp_path: Path) -> None:
    assert run_argv([sys.executable, "-c", "print('hi')"]) == "hi\n"
    with pytest.raises(RuntimeError, match="exited with 3"):
        run_argv([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])


def test_run_argv_sends_bytes_as_stdin() -> None:
    echo = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"]
    assert run_argv(echo, stdin=b"one trip\n") == "ONE TRIP\n"
    assert run_argv(echo) == ""  # default: nothing (DEVNULL)
