"""Approval answer -> the gate's verdict in the run's log, against a real ``quayside up``.

One result, ``approval_resume``. Per answer an ``approval-demo`` run is started and left
waiting at its gate; after a random pause within the gate's poll interval the answer is sent
and the clock starts; the latency is the timestamp of the gate's log line ``approval request
#N approved by ...`` minus that start (``arrived`` figures: when that line could be read from
the Prefect API). Answers go one at a time, through:

- ``quayside`` (the reference): ``POST /api/approvals/{run}`` with an approver's token; the
  gateway checks and records the decision and wakes the run, which waits in its own process;
- ``ui_code``: the Prefect UI's form - ``POST /api/flow_runs/{run}/resume`` with the run input
  the form sends (a single-use code from ``POST /api/approvals/{run}/code``, issued before the
  clock starts);
- ``cli``: ``quayside approve RUN`` as a process (the clock starts before the process does,
  so its start-up counts);
- ``suspended``: the gateway's answer to a run suspended at once (``pause_s=0``: Prefect's
  ``suspend_flow_run``, which ends the process; answering schedules the run again and the
  worker runs the flow from the top) - how every answer reached its verdict before.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from bench.harness import (
    PROJECT_DIR,
    Options,
    Timing,
    ToolResult,
    log,
    machine_info,
    make_entry,
    reproduce_command,
)
from bench.trigger_latency import percentile, summary

NAME = "approval_resume"
COMMAND = reproduce_command(NAME)
RESULTS = ("approval_resume",)
#: answers through the gateway and the UI form (QUAYSIDE_BENCH_APPROVALS overrides)
ANSWERS = 12
#: answers through the CLI and to suspended runs (QUAYSIDE_BENCH_BASELINE_APPROVALS)
BASELINE_ANSWERS = 5
GOAL_P50_S = 3.0
POLL_S = 0.5  # the gate's poll interval (QUAYSIDE_APPROVAL_POLL_S default)
WAIT_S = 180.0
START_TIMEOUT_S = 900.0
VERDICT = " approved by "

CONTEXT = {
    "approval_resume": (
        f"Goal (issue 16): answer -> verdict in the run log under {GOAL_P50_S:g} s p50; "
        "measured before the change: 12-14 s for an answer in the Prefect UI, because every "
        "wait was a `suspend_flow_run`: the answer scheduled the run again, the worker's next "
        "poll picked it up, a new flow-run process started and the flow ran from the top - "
        "for a git deploy that repeats its work before the gate (resolving the ref, reading "
        "every host's facts for the plan). The `suspended` row is that path today on the "
        "trivial `approval-demo` flow, with the fork server and a 1 s worker poll: its floor, "
        "without a release flow's own re-run. Now the gate first waits in its own process "
        f"(Prefect's Paused state, polled every {POLL_S:g} s, `QUAYSIDE_APPROVAL_POLL_S`) for "
        "10 minutes (`QUAYSIDE_APPROVAL_PAUSE_S`), then suspends the run so that no process "
        "or worker slot waits a day; a token answer is recorded where it arrives and wakes "
        "the run with no input, a code from the UI form is read, deleted and checked by the "
        "gate. `arrived` adds Prefect's log shipping (the run's log handler sends batches "
        "every 2 s). The CLI's figures include the CLI process's own start-up (Python, "
        "typer, SQLAlchemy, the Prefect client), most of its time on this 2-core machine."
    )
}


@dataclass(frozen=True)
class AnswerPath:
    key: str
    label: str
    includes: str
    suspended: bool


GATEWAY = AnswerPath(
    "quayside",
    "gateway answer (token), run waiting in its process",
    "POST /api/approvals/{run} -> token, role and policy checked and recorded in the ledger "
    "-> run resumed without input -> the gate's next poll (<= 0.5 s) -> ledger read -> "
    "verdict logged",
    False,
)
UI_CODE = AnswerPath(
    "ui_code",
    "Prefect UI form (approval code), run waiting in its process",
    "POST /api/flow_runs/{run}/resume with the form's input -> the gate's next poll -> input "
    "read and deleted -> code checked, consumed, decision recorded -> verdict logged",
    False,
)
CLI = AnswerPath(
    "cli",
    "`quayside approve RUN` (token), run waiting in its process",
    "the CLI process from its start (imports, token check, ledger, resume) -> the gate's "
    "next poll -> verdict logged",
    False,
)
SUSPENDED = AnswerPath(
    "suspended",
    "gateway answer (token), run suspended (the old wait)",
    "POST /api/approvals/{run} -> run scheduled again -> worker poll (1 s) -> new flow-run "
    "process -> the flow from the top -> ledger read -> verdict logged",
    True,
)


@dataclass(frozen=True)
class Answer:
    run_id: str
    verdict_s: float
    arrived_s: float


class Bench:
    """A running platform, an approver and a requester."""

    def __init__(self, platform: Any, work: Path) -> None:
        from quayside.auth import service
        from quayside.ledger.db import make_engine

        self.platform = platform
        self.work = work
        engine = make_engine(f"sqlite:///{platform.home / 'ledger.db'}")
        try:
            for name, role in (("bench-dev", "DEVELOPER"), ("bench-lead", "MASTER")):
                service.create_user(engine, name)
                service.grant_role(engine, name, role, space="default")
            self.token = service.create_token(engine, "bench-lead")
        finally:
            engine.dispose()
        self.http = httpx.Client(
            base_url=platform.gateway_url,
            timeout=60,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        self.count = 0

    def close(self) -> None:
        self.http.close()

    def waiting_run(self, suspended: bool) -> str:
        from quayside.runs import read_run, start_run

        self.count += 1
        parameters: dict[str, Any] = {"app": f"bench-{self.count}", "requested_by": "bench-dev"}
        if suspended:
            parameters["pause_s"] = 0
        run_id = start_run("approval-demo", parameters).id
        wanted = "Suspended" if suspended else "Paused"
        deadline = time.monotonic() + WAIT_S
        while read_run(run_id).state_name != wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} never reached {wanted}")
            time.sleep(0.2)
        return run_id

    def send(self, path: AnswerPath, run_id: str) -> float:
        """Send the answer; the wall-clock time just before it left."""
        from quayside.runs import resume_run

        if path is UI_CODE:
            issued = self.http.post(f"/api/approvals/{run_id}/code")
            issued.raise_for_status()
            code = issued.json()["code"]
            started = time.time()
            status = resume_run(run_id, {"decision": "approve", "code": code, "comment": ""})
            if status != "ACCEPT":
                raise RuntimeError(f"resume of {run_id}: {status}")
            return started
        if path is CLI:
            started = time.time()
            done = subprocess.run(
                [sys.executable, "-m", "quayside.cli.main", "approve", run_id, "--wait", "0"],
                env=self.platform.env | {"QUAYSIDE_TOKEN": self.token},
                cwd=PROJECT_DIR,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"quayside approve {run_id}: {done.stderr[-300:]}")
            return started
        started = time.time()
        reply = self.http.post(f"/api/approvals/{run_id}", json={"decision": "approve"})
        if reply.status_code != 200:
            raise RuntimeError(f"POST /api/approvals/{run_id}: {reply.status_code} {reply.text}")
        return started

    def verdict(self, run_id: str, started: float) -> Answer:
        """Wait for the gate's verdict line in the run's logs."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            stamp = asyncio.run(self._verdict_stamp(run_id))
            if stamp is not None:
                return Answer(run_id, stamp - started, time.time() - started)
            time.sleep(0.05)
        raise TimeoutError(f"no verdict in the logs of run {run_id}")

    async def _verdict_stamp(self, run_id: str) -> float | None:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        async with self.platform.client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)]))
            )
        for line in logs:
            if line.message.startswith("approval request #") and VERDICT in line.message:
                return float(line.timestamp.timestamp())
        return None


def measure(bench: Bench, path: AnswerPath, n: int, rng: random.Random) -> list[Answer]:
    answers = []
    for i in range(n):
        run_id = bench.waiting_run(path.suspended)
        time.sleep(rng.uniform(0, POLL_S))  # sample the gate's poll phase
        started = bench.send(path, run_id)
        answer = bench.verdict(run_id, started)
        answers.append(answer)
        log(
            f"{path.key} {i + 1}/{n}: verdict after {answer.verdict_s:.2f} s "
            f"(in the API after {answer.arrived_s:.2f} s)"
        )
    return answers


@contextmanager
def platform(work: Path) -> Iterator[Bench]:
    from testbed.platform import Platform

    home = work / "home"
    home.mkdir(parents=True)
    inventory = home / "quayside.yaml"
    inventory.write_text("hosts: {}\n")
    running = Platform(home, inventory)
    log("starting the platform")
    started = time.perf_counter()
    running.start(timeout=START_TIMEOUT_S)
    log(f"up in {time.perf_counter() - started:.1f} s")
    pointed = {
        "PREFECT_API_URL": running.api_url,
        "PREFECT_API_AUTH_STRING": running.auth_string,
        "QUAYSIDE_HOME": str(running.home),
        "QUAYSIDE_INVENTORY": str(running.inventory),
    }
    saved = {k: os.environ.get(k) for k in pointed}
    os.environ.update(pointed)  # quayside.runs in this process talks to this platform
    _refresh_prefect_settings()
    try:
        bench = Bench(running, work)
        try:
            yield bench
        finally:
            bench.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_prefect_settings()
        running.stop()


def _refresh_prefect_settings() -> None:
    import prefect.context

    prefect.context.refresh_global_settings_context()


def _count(env: str, default: int) -> int:
    value = os.environ.get(env, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


def _stats(answers: Sequence[Answer], field: Callable[[Answer], float]) -> dict[str, Any]:
    return summary([field(a) for a in answers])


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Start a platform, answer approvals through each path, and time the verdicts."""
    n = _count("QUAYSIDE_BENCH_APPROVALS", ANSWERS)
    n_base = _count("QUAYSIDE_BENCH_BASELINE_APPROVALS", BASELINE_ANSWERS)
    rng = random.Random(20261205)
    options.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{NAME}-", dir=options.work_dir))
    measured: dict[str, list[Answer]] = {}
    try:
        with platform(work) as bench:
            bench.waiting_run(False)  # warm-up: the first run after start-up imports more
            for path, count in ((GATEWAY, n), (UI_CODE, n), (CLI, n_base), (SUSPENDED, n_base)):
                if path.key in options.skip:
                    continue
                measured[path.key] = measure(bench, path, count, rng)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    tools = []
    figures: dict[str, Any] = {}
    for path in (GATEWAY, UI_CODE, CLI, SUSPENDED):
        answers = measured.get(path.key)
        if not answers:
            tools.append(ToolResult(path.key, path.label, path.includes, None, "--skip"))
            continue
        verdicts = [a.verdict_s for a in answers]
        tools.append(
            ToolResult(
                path.key,
                path.label,
                path.includes,
                Timing(median_s=statistics.median(verdicts), runs_s=verdicts),
            )
        )
        figures[path.key] = {
            **_stats(answers, lambda a: a.verdict_s),
            "arrived_p50_s": round(percentile([a.arrived_s for a in answers], 50), 3),
            "arrived_p95_s": round(percentile([a.arrived_s for a in answers], 95), 3),
        }
    reference = figures.get(GATEWAY.key, {})
    entry = make_entry(
        tools,
        title="Approval answer -> verdict in the run log",
        description=(
            "An `approval-demo` run waits at its gate on a real `quayside up` (Prefect server "
            "on SQLite, process worker with the fork server, gateway); an approver's answer is "
            "sent after a random pause within the gate's 0.5 s poll; latency = the timestamp "
            "of the gate's `approval request #N approved by ...` log line minus the time just "
            "before the answer left. One answer at a time; the table's median is p50."
        ),
        command=COMMAND,
        repeat=len(measured.get(GATEWAY.key, [])),
        extra={
            "p50_s": reference.get("p50_s"),
            "p95_s": reference.get("p95_s"),
            "n": reference.get("n"),
            "what": (
                "seconds from an approver's answer (POST /api/approvals/{run}) to the gate's "
                "verdict in the run log, the run waiting in its process"
            ),
            "paths": figures,
        },
        machine=machine_info(),
    )
    return {NAME: entry}
