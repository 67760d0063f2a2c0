"""``python -m bench [NAME ...] [--repeat N] [--hosts N]``: run all or the named benchmarks,
merge their figures into bench/results.json and re-render docs/benchmarks.md."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.harness import (
    MARKDOWN_PATH,
    MIN_REPEAT,
    RESULTS_PATH,
    WORK_DIR,
    Options,
    interrupts_as_keyboard_interrupt,
    kill_all,
    load_results,
    log,
    merge_results,
    render_markdown,
    settle,
    write_markdown,
)

#: Benchmark modules, each with ``RESULTS`` (the results.json entries it writes) and
#: ``run(options: Options, parts: Sequence[str]) -> dict[str, dict]`` (those entries by name).
BENCHMARKS: dict[str, str] = {
    "git_deploy": "bench.git_deploy",
    "trigger_latency": "bench.trigger_latency",
    "cli_startup": "bench.cli_startup",
    "cli_deploy_tail": "bench.cli_deploy_tail",
    "cli_deploy_e2e": "bench.cli_deploy_e2e",
    "approval_resume": "bench.approval_resume",
    "platform_start": "bench.platform_start",
    "config_publish": "bench.config_publish",
    "image_promote": "bench.image_promote",
    "scale_fanout": "bench.scale_fanout",
    "scale_concurrent": "bench.scale_concurrent",
    "image_build": "bench.image_build",
    "image_release": "bench.image_release",
}


def plan(names: Sequence[str]) -> dict[str, list[str]]:
    """Module name -> results to produce, for NAMEs that are modules (all of their results) or
    single results (``git_deploy_rollback``); empty ``names`` means everything.

    Raises:
        KeyError: a name that is neither.
    """
    out: dict[str, list[str]] = {}
    for module_name, path in BENCHMARKS.items():
        results = list(importlib.import_module(path).RESULTS)
        if not names or module_name in names:
            out[module_name] = results
            continue
        chosen = [r for r in results if r in names]
        if chosen:
            out[module_name] = chosen
    known = set(BENCHMARKS) | {r for rs in out.values() for r in rs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(", ".join(unknown))
    return out


def context() -> dict[str, str]:
    """Static text per result (reference figures, goals) from every module's ``CONTEXT``."""
    out: dict[str, str] = {}
    for path in BENCHMARKS.values():
        out.update(getattr(importlib.import_module(path), "CONTEXT", {}))
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run Quayside's benchmarks against other tools."
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="benchmark modules (git_deploy) or single results (git_deploy_rollback); default all",
    )
    parser.add_argument(
        "--repeat", type=int, default=MIN_REPEAT, help=f"timed runs per tool (default {MIN_REPEAT})"
    )
    parser.add_argument("--hosts", type=int, default=20, help="sshd hosts (default 20)")
    parser.add_argument(
        "--skip", action="append", default=[], metavar="TOOL", help="tool key not to measure"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="scratch directory")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only re-render docs/benchmarks.md from bench/results.json (runs nothing)",
    )
    parser.add_argument(
        "--no-save",
        action="store_true",
        help="print the figures instead of writing results.json and docs/benchmarks.md "
        f"(needed for --repeat below {MIN_REPEAT})",
    )
    args = parser.parse_args(argv)
    try:
        args.plan = plan(args.names)
    except KeyError as e:
        every = [r for p in BENCHMARKS.values() for r in importlib.import_module(p).RESULTS]
        parser.error(f"unknown benchmark(s) {e.args[0]}; known: {', '.join([*BENCHMARKS, *every])}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.repeat < MIN_REPEAT and not args.no_save:
        parser.error(f"published figures are medians of at least {MIN_REPEAT} runs: use --no-save")
    if args.hosts < 1:
        parser.error("--hosts must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        repeat=args.repeat,
        hosts=args.hosts,
        skip=frozenset(args.skip),
        keep=args.keep,
        work_dir=args.work_dir.resolve(),
    )
    if args.render:
        write_markdown(load_results(RESULTS_PATH), MARKDOWN_PATH, context())
        log(f"rendered {MARKDOWN_PATH} from {RESULTS_PATH}")
        return 0
    with interrupts_as_keyboard_interrupt():
        try:
            for name, parts in args.plan.items():
                module = importlib.import_module(BENCHMARKS[name])
                settle()
                log(f"running {name}: {', '.join(parts)}")
                entries = module.run(options, parts)
                if args.no_save:
                    print(render_markdown(entries, context()))
                    continue
                results = merge_results(entries, RESULTS_PATH)
                write_markdown(results, MARKDOWN_PATH, context())
                log(f"{name}: wrote {RESULTS_PATH} and {MARKDOWN_PATH}")
        except KeyboardInterrupt:
            log("interrupted; stopped every process the benchmark started")
            return 130
        finally:
            kill_all()
    return 0


def exit_now_if_interrupted(code: int) -> None:
    """After an interrupt, end the process without waiting for threads: a flow called
    in-process whose host work hangs keeps a non-daemon worker thread that the interpreter
    would otherwise wait for at exit, after every process the benchmark started was stopped."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    status = main()
    exit_now_if_interrupted(status)
    sys.exit(status)
