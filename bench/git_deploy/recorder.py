"""Measuring each tool of a benchmark the same way: repeated timed runs with untimed setup
and checks, a skipped or failing tool recorded as "not measured" with the reason instead of
ending the whole benchmark."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.harness import Options, ToolResult, log, measure_steps


@dataclass(frozen=True)
class Spec:
    """A tool's key, table label and what its time includes."""

    key: str
    label: str
    includes: str


class Recorder:
    """Runs each tool's measurement unless skipped; a failure becomes a "not measured"
    reason (with the error) instead of ending the whole benchmark. ``after`` (untimed) runs
    after every tool, e.g. deleting its deploy roots."""

    def __init__(self, options: Options, after: Callable[[], Any] | None = None) -> None:
        self.options = options
        self.after = after

    def tool(
        self,
        spec: Spec,
        fn: Callable[[], Any],
        setup: Callable[[], Any] | None = None,
        check: Callable[[], Any] | None = None,
        unavailable: str | None = None,
    ) -> ToolResult:
        return self.steps([spec], [fn], setup, [check], unavailable)[0]

    def steps(
        self,
        specs: Sequence[Spec],
        steps: Sequence[Callable[[], Any]],
        setup: Callable[[], Any] | None = None,
        checks: Sequence[Callable[[], Any] | None] = (),
        unavailable: str | None = None,
    ) -> list[ToolResult]:
        """Steps that build on each other, each reported as its own tool (see
        :func:`bench.harness.measure_steps`)."""
        results = [ToolResult(key=s.key, label=s.label, includes=s.includes) for s in specs]
        keys = ", ".join(s.key for s in specs)
        if unavailable is not None:
            reason: str | None = unavailable
        elif any(s.key in self.options.skip for s in specs):
            reason = "skipped in this run (--skip)"
        else:
            reason = None
            log(f"  {keys}: {self.options.repeat} runs")
            try:
                timings = measure_steps(steps, self.options.repeat, setup, checks)
            except Exception as e:  # recorded as not measured
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                reason = f"failed in this run: {type(e).__name__}: {first[:300]}"
                log(f"  {keys}: FAILED: {e}")
            else:
                for result, timing in zip(results, timings, strict=True):
                    result.timing = timing
                    runs = ", ".join(f"{r:.2f}" for r in timing.runs_s)
                    log(f"  {result.key}: median {timing.median_s:.2f} s ({runs})")
            finally:
                if self.after is not None:
                    self.after()
        if reason is not None:
            for result in results:
                result.not_measured = reason
        return results
