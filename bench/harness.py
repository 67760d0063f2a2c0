"""The benchmark harness: timing, process hygiene, ``bench/results.json`` and
``docs/benchmarks.md``.

A benchmark measures Quayside and the tools a user would otherwise use on the same work, in
the same process run, and reports each tool's median wall time and ``ratio_vs_<tool>`` =
that tool's time / Quayside's time (above 1 means Quayside is faster).

Results are merged into ``bench/results.json`` one object per benchmark (running one benchmark
never drops another's figures); ``docs/benchmarks.md`` is rendered from the whole file.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_PATH = BENCH_DIR / "results.json"
MARKDOWN_PATH = PROJECT_DIR / "docs" / "benchmarks.md"
WORK_DIR = BENCH_DIR / ".work"

#: The key of the tool every ratio is computed against.
REFERENCE = "quayside"
#: Fewest repetitions whose median is published.
MIN_REPEAT = 3
REPRODUCE_ALL = "make bench"


def reproduce_command(name: str) -> str:
    """The command that re-runs one benchmark module."""
    return f"uv run python -m bench {name}"


# -- timing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated runs and their median, in seconds.

    ``outputs`` holds what each timed call returned (e.g. bytes sent), in run order.
    """

    median_s: float
    runs_s: list[float]
    outputs: list[Any] = field(default_factory=list, compare=False)


def measure(
    fn: Callable[[], Any],
    repeat: int = MIN_REPEAT,
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn`` ``repeat`` times with a monotonic clock; ``setup`` runs before each call and
    is not timed.

    Args:
        fn: the work to time; its return value is kept in ``Timing.outputs``.
        repeat: how many timed calls (at least 1; publish only medians of ``MIN_REPEAT``+).
        setup: called before every timed call (fresh deploy roots, a previous release, ...).

    Returns:
        The median and every run's wall time.

    Raises:
        ValueError: ``repeat`` is below 1.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    runs: list[float] = []
    outputs: list[Any] = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        outputs.append(fn())
        runs.append(time.perf_counter() - start)
    return Timing(median_s=statistics.median(runs), runs_s=runs, outputs=outputs)


def measure_steps(
    steps: Sequence[Callable[[], Any]],
    repeat: int = MIN_REPEAT,
    setup: Callable[[], Any] | None = None,
    checks: Sequence[Callable[[], Any] | None] = (),
) -> list[Timing]:
    """Like :func:`measure` for a sequence of steps that build on each other (deploy the next
    release, then roll it back): per repetition, ``setup`` then each step in order, each timed
    on its own; ``checks[i]`` (untimed) runs after step ``i``. One Timing per step."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    runs: list[list[float]] = [[] for _ in steps]
    outputs: list[list[Any]] = [[] for _ in steps]
    for _ in range(repeat):
        if setup is not None:
            setup()
        for i, step in enumerate(steps):
            start = time.perf_counter()
            outputs[i].append(step())
            runs[i].append(time.perf_counter() - start)
            check = checks[i] if i < len(checks) else None
            if check is not None:
                check()
    return [
        Timing(median_s=statistics.median(r), runs_s=r, outputs=o)
        for r, o in zip(runs, outputs, strict=True)
    ]


def ratio(tool_s: float | None, quayside_s: float | None) -> float | None:
    """``tool_s / quayside_s`` rounded to 2 places (above 1: Quayside is faster); None if
    either time is missing or Quayside's is not positive."""
    if tool_s is None or quayside_s is None or quayside_s <= 0:
        return None
    return round(tool_s / quayside_s, 2)


# -- one benchmark's figures -----------------------------------------------------------------


@dataclass
class ToolResult:
    """One tool's figures in a benchmark, or why it was not measured.

    Args:
        key: snake_case id: becomes ``<key>_s`` and ``ratio_vs_<key>`` in results.json.
        label: what the table calls it.
        includes: what its wall time includes (and excludes), in one sentence.
        timing: the measurement, or None.
        not_measured: why there is no measurement (required when ``timing`` is None).
    """

    key: str
    label: str
    includes: str
    timing: Timing | None = None
    not_measured: str | None = None


def _load_now() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


#: the 1-minute load average when the benchmark started, before its own work: other work on
#: the machine makes every tool slower (the load at the end also counts the benchmark's own
#: hosts and tools)
LOAD_AT_START = _load_now()


def settle(timeout_s: float = 240) -> float | None:
    """Wait (up to ``timeout_s``) until the 1-minute load average is below the core count,
    so a benchmark does not start on the tail of earlier work (the average decays over
    minutes); returns the load it starts with, which becomes ``LOAD_AT_START``."""
    global LOAD_AT_START
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + timeout_s
    load = _load_now()
    if load is not None and load >= cores:
        log(f"waiting for the machine to settle (1-minute load {load:g} on {cores} cores)")
    while load is not None and load >= cores and time.monotonic() < deadline:
        time.sleep(5)
        load = _load_now()
    LOAD_AT_START = load
    return load


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, Python, OS and the 1-minute load average when the benchmark
    started and now."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }
    if LOAD_AT_START is not None:
        info["load_avg_1m_at_start"] = LOAD_AT_START
    load = _load_now()
    if load is not None:
        info["load_avg_1m"] = load
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gb"] = round(int(line.split()[1]) / (1 << 20), 1)
                break
    except OSError:
        pass
    return info


def make_entry(
    tools: Sequence[ToolResult],
    *,
    title: str,
    description: str,
    command: str,
    repeat: int,
    extra: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    measured_at: datetime | None = None,
    machine: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The results.json object of one benchmark.

    Every tool gets ``<key>_s`` (median seconds, or None), every tool other than Quayside gets
    ``ratio_vs_<key>``; ``runs_s``, ``tools`` (label and what the time includes) and
    ``not_measured`` (reasons) keep the detail the Markdown table needs. ``extra`` keys
    (``hosts``, ``bytes_sent_per_host``, ...) are stored as given.

    Raises:
        ValueError: a tool has neither a timing nor a reason, or a key repeats.
    """
    keys = [t.key for t in tools]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate tool keys in {keys}")
    entry: dict[str, Any] = {"title": title, "description": description}
    entry.update(extra or {})
    by_key = {t.key: t for t in tools}
    reference = by_key.get(REFERENCE)
    reference_s = reference.timing.median_s if reference and reference.timing else None
    for tool in tools:
        if tool.timing is None and not tool.not_measured:
            raise ValueError(f"{tool.key}: give a timing or a not_measured reason")
        entry[f"{tool.key}_s"] = round(tool.timing.median_s, 3) if tool.timing else None
    for tool in tools:
        if tool.key != REFERENCE:
            tool_s = tool.timing.median_s if tool.timing else None
            entry[f"ratio_vs_{tool.key}"] = ratio(tool_s, reference_s)
    entry["runs_s"] = {
        t.key: [round(r, 3) for r in t.timing.runs_s] for t in tools if t.timing is not None
    }
    entry["tools"] = {t.key: {"label": t.label, "includes": t.includes} for t in tools}
    entry["not_measured"] = {t.key: t.not_measured for t in tools if t.timing is None}
    entry["notes"] = list(notes)
    entry["repeat"] = repeat
    entry["measured_at"] = (measured_at or datetime.now(UTC)).isoformat(timespec="seconds")
    entry["machine"] = dict(machine if machine is not None else machine_info())
    entry["command"] = command
    return entry


# -- results.json ----------------------------------------------------------------------------


def load_results(path: Path = RESULTS_PATH) -> dict[str, Any]:
    """The benchmarks recorded in ``path`` (empty if the file does not exist).

    Raises:
        ValueError: the file is not a JSON object.
    """
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of benchmarks, got {type(data).__name__}")
    return data


def merge_results(entries: Mapping[str, Mapping[str, Any]], path: Path = RESULTS_PATH) -> dict:
    """Replace (or add) each benchmark of ``entries`` in ``path``, keeping all the others;
    written atomically. Returns the merged contents."""
    results = load_results(path)
    for name, entry in entries.items():
        results[name] = dict(entry)
    write_atomic(path, json.dumps(results, indent=2, sort_keys=False) + "\n")
    return results


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- docs/benchmarks.md ----------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _format_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "not measured"
    return str(value)


#: Keys of an entry the table renders itself; any other key is listed under "Other figures".
_STRUCTURAL = {
    "title",
    "description",
    "runs_s",
    "tools",
    "not_measured",
    "notes",
    "repeat",
    "measured_at",
    "machine",
    "command",
}


def render_benchmark(name: str, entry: Mapping[str, Any], context: str = "") -> str:
    """One benchmark as a Markdown section: what it measures, a table (tool, what the time
    includes, median, runs, ratio), other figures, notes, ``context`` (static text from the
    benchmark module: reference figures, goals) and the command that reproduces it."""
    tools: Mapping[str, Mapping[str, str]] = entry.get("tools", {})
    runs: Mapping[str, list[float]] = entry.get("runs_s", {})
    not_measured: Mapping[str, str] = entry.get("not_measured", {})
    lines = [f"## {entry.get('title', name)} (`{name}`)", ""]
    if entry.get("description"):
        lines += [str(entry["description"]), ""]
    lines += [
        "| tool | what the time includes | median (s) | runs (s) | ratio: tool / Quayside |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for key, tool in tools.items():
        median = entry.get(f"{key}_s")
        if key in not_measured:
            runs_text = f"not measured: {not_measured[key]}"
        else:
            runs_text = ", ".join(f"{r:.2f}" for r in runs.get(key, []))
        if key == REFERENCE:
            ratio_text = "1 (reference)" if median is not None else "—"
        else:
            value = entry.get(f"ratio_vs_{key}")
            ratio_text = "—" if value is None else f"{value:.2f}"
        lines.append(
            f"| {_cell(tool.get('label', key))} | {_cell(tool.get('includes', ''))} | "
            f"{_seconds(median)} | {_cell(runs_text)} | {ratio_text} |"
        )
    lines.append("")
    skip = _STRUCTURAL | {f"{k}_s" for k in tools} | {f"ratio_vs_{k}" for k in tools}
    others = [(k, v) for k, v in entry.items() if k not in skip]
    if others:
        lines += ["Other figures:", ""]
        lines += [f"- `{k}`: {_format_value(v)}" for k, v in others]
        lines.append("")
    notes = entry.get("notes") or []
    if notes:
        lines += ["Notes:", ""]
        lines += [f"- {n}" for n in notes]
        lines.append("")
    if context:
        lines += [context.strip(), ""]
    machine = entry.get("machine") or {}
    cores = machine.get("cores")
    start, end = machine.get("load_avg_1m_at_start"), machine.get("load_avg_1m")
    busy_at = start if isinstance(start, int | float) else end
    if isinstance(busy_at, int | float) and isinstance(cores, int) and busy_at > cores:
        lines += [
            f"**Busy machine:** the 1-minute load average was {busy_at:g} on {cores} cores "
            "when the benchmark started: other work was running alongside, so every absolute "
            "time here is inflated (and noisier) compared with an idle machine. The load also "
            "varied while the tools ran one after another, so read ratios as approximate.",
            "",
        ]
    elif isinstance(end, int | float) and isinstance(cores, int) and end > cores:
        lines += [
            f"Load: {start:g} (1-minute average) when the benchmark started on an otherwise "
            f"idle machine, {end:g} at its end - the benchmark's own work (the hosts' sshd, "
            "rsync and tar, and the tools themselves, on the same cores).",
            "",
        ]
    machine_text = ", ".join(f"{k} {v}" for k, v in machine.items())
    lines += [
        f"Measured {entry.get('measured_at', '?')}, median of {entry.get('repeat', '?')} runs "
        f"per tool, on {machine_text or 'an unrecorded machine'}.",
        "",
        f"Reproduce: `{entry.get('command', REPRODUCE_ALL)}`",
        "",
    ]
    return "\n".join(lines)


def render_markdown(
    results: Mapping[str, Mapping[str, Any]], context: Mapping[str, str] | None = None
) -> str:
    """The whole ``docs/benchmarks.md``; ``context`` adds static text per benchmark."""
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `python -m bench` from bench/results.json; edit bench/, not this. -->",
        "",
        "Each benchmark runs Quayside and the tools a user would otherwise use on the same work, "
        "in the same run, on this machine. Times are wall-clock medians; "
        "**ratio = the tool's time / Quayside's time**, so above 1 means Quayside is faster. "
        "A tool that could not be measured says why; no figure here is estimated.",
        "",
        f"Reproduce everything with `{REPRODUCE_ALL}`, or one benchmark module with "
        f"`{reproduce_command('<name>')}` (e.g. `{reproduce_command('git_deploy')}`). "
        "Options: `--repeat N` (default 3, the minimum published), `--hosts N`.",
        "",
    ]
    for name, entry in results.items():
        lines.append(render_benchmark(name, entry, (context or {}).get(name, "")))
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(
    results: Mapping[str, Mapping[str, Any]],
    path: Path = MARKDOWN_PATH,
    context: Mapping[str, str] | None = None,
) -> None:
    write_atomic(path, render_markdown(results, context))


# -- processes -------------------------------------------------------------------------------


class ProcessError(RuntimeError):
    """A benchmark subprocess failed; the message has its argv, exit code and output tail."""


_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_argv(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = 1800,
    stdin: int | bytes | None = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
) -> str:
    """Run ``argv`` (no shell) in its own process group and return its stdout. ``stdin``:
    a file descriptor / ``subprocess`` constant, or bytes to send.

    The group is killed with everything it started (ssh children of rsync and ansible) if the
    call fails, times out or is interrupted; :func:`kill_all` kills every group still running.

    Raises:
        ProcessError: non-zero exit or timeout.
    """
    proc = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.PIPE if isinstance(stdin, bytes) else stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with _live_lock:
        _live.add(proc)
    try:
        out, err = proc.communicate(
            input=stdin if isinstance(stdin, bytes) else None, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ProcessError(f"{argv[0]} timed out after {timeout} s: {' '.join(argv)}") from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        with _live_lock:
            _live.discard(proc)
    text = out.decode(errors="replace") if out else ""
    if proc.returncode != 0:
        tail = (text + (err.decode(errors="replace") if err else ""))[-3000:]
        raise ProcessError(f"{' '.join(argv)} exited with {proc.returncode}:\n{tail}")
    return text


def kill_all() -> None:
    """Kill every process group started by :func:`run_argv` that is still running."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        _kill_group(proc)


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread (like Ctrl-C), so every
    ``finally`` runs and the processes a benchmark started are stopped."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def log(message: str) -> None:
    """Progress on stderr, with a timestamp."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    """What ``python -m bench`` passes to every benchmark module's ``run``.

    Attributes:
        repeat: timed runs per tool.
        hosts: sshd hosts for fleet benchmarks.
        skip: tool keys not to measure (recorded as not measured, with the reason).
        keep: keep the work directory afterwards (for inspection).
        work_dir: parent of each benchmark's scratch directory.
    """

    repeat: int = MIN_REPEAT
    hosts: int = 20
    skip: frozenset[str] = frozenset()
    keep: bool = False
    work_dir: Path = WORK_DIR
