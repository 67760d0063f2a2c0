"""How long ``quayside deploy`` / ``quayside rollback`` take to return after their run ended.

One result, ``cli_deploy_tail``: against a real ``quayside up`` (Prefect server, worker with
the fork server, gateway) and 5 sshd hosts on loopback, an app of 300 files; per repetition
``quayside deploy shop test v2`` then ``quayside rollback shop test`` (the hosts hold v1 from
an untimed first deploy), each run by a user with a token, as a subprocess. For each command:

- ``after_final_s``: the command's exit (wall clock) minus the timestamp of the run's final
  state in Prefect's state history -- what the CLI adds after the run is over;
- the command's wall time and the run's own time (Running -> final state);
- whether the CLI printed every log line the run's own process sent to the API (the last
  ones included). The worker's lines about the run ("submitting flow run ...") come from
  another process, on its own 2 s batch schedule, and may arrive after a short run ended:
  they are counted apart.

Before this benchmark existed the CLI waited up to 30 s for a run's last log batch, which
the fork server's run processes often never sent (issue 16: a 3.4 s deploy took 38.6 s).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

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

NAME = "cli_deploy_tail"
COMMAND = reproduce_command(NAME)
RESULTS = ("cli_deploy_tail",)
HOSTS = 5
FILES = 300
GOAL_S = 1.5
#: the fleet's first address: away from the test suite's fleets (127.0.0.11 and up)
FIRST_ADDRESS = "127.0.0.111"
USER = "bench-dev"

CONTEXT = {
    "cli_deploy_tail": (
        f"Goal (issue 16): the command returns within {GOAL_S:g} s of the run's final state, "
        "with every log line of the run. Measured before the change: a deploy that took 3.4 s "
        "in Prefect took 38.6 s at the CLI (300 files to 5 hosts: 37-81 s), because the CLI "
        "waited up to 30 s after the final state for the engine's last log line, and runs "
        "started from the fork server end with `os._exit`, which skipped Prefect's flush of "
        "its log worker at interpreter exit: the last batch (often every line of a short run) "
        "never reached the API. Now each run process drains Prefect's `APILogWorker` and "
        "`EventsWorker` before `os._exit` (`quayside.stack.forkserver.flush_prefect`, what "
        "`threading._register_atexit` would have done), and the CLI, once the state is final, "
        'reads every 0.05 s until the engine\'s "Finished in state" line is in (at most 0.8 s: '
        "a crashed run has none). Two "
        "more costs came out on the way: the CLI built a new Prefect client (and its TLS "
        "context, about 0.1 s of CPU) for every poll, now one serves them all; and after its "
        "last line the CLI spent 0.3-1.9 s in CPython's teardown of the modules it had loaded, "
        "now it runs the exit handlers and ends with `os._exit` "
        "(`quayside.cli.process_exit`). Then (session 11) the CLI reads the run's state every "
        "0.1 s (was 0.5 s: on average 0.25 s before it saw the final state) and its logs on "
        "every fifth read (every 0.5 s, as before), so the API gets about 12 small reads a "
        "second per followed run instead of 4 (each about 10 ms of the server's time on "
        "SQLite here); and it prepares the end while the run waits for a worker (host count, "
        "the ledger's mappers and a pooled connection, rich's table: about 50 ms of CPU that "
        "came after the final state). Against the same platform, interleaved with the "
        "previous CLI (load 3-5): 0.23 s after the final state (median of 10) against 0.35 s. "
        "Session 13: a run whose body completed sends its queued log lines and labels itself "
        "(`quayside.logs-sent` = its run_count) before Prefect records the final state "
        "(`quayside.runs.log_marker`), so the CLI reads the logs once more when it sees both and "
        "returns, instead of waiting for the run's process to end and ship the engine's last "
        "line (failed, cancelled and not-run runs are followed to that line as before); the "
        "table's run is the first measured with it."
    )
}


WORKER_LOGGER = "prefect.flow_runs.worker"


@dataclass
class Measured:
    kind: str
    command_s: float
    after_final_s: float
    flow_s: float | None
    missing: list[str]
    worker_missing: list[str]


def make_repo(path: Path) -> None:
    """A git repository of FILES small files with tags v1 and v2 (v2 changes one file)."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    path.mkdir(parents=True)
    git("init", "-q", "-b", "main")
    for i in range(FILES):
        target = path / f"app/dir_{i % 10:02d}/file_{i:03d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"file {i}\n" * 20)
    (path / "index.php").write_text("<?php echo 'v1';\n")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    git("tag", "v1")
    (path / "index.php").write_text("<?php echo 'v2';\n")
    git("commit", "-q", "-am", "v2")
    git("tag", "v2")


def write_inventory(path: Path, fleet: Any, repo: Path) -> None:
    from testbed.release_fixtures import host_entries

    hosts = host_entries(fleet)
    app = {
        "repo": str(repo),
        "deploy_root": str(fleet.base_dir / "{host}" / "root"),
        "environments": {"test": {"hosts": list(hosts)}},
    }
    path.write_text(yaml.safe_dump({"hosts": hosts, "apps": {"shop": app}}))


def state_history(platform: Any, run_id: str) -> list[tuple[str, float]]:
    """(state type, epoch seconds) of each state the run went through, oldest first."""

    async def go() -> list[tuple[str, float]]:
        async with platform.client() as client:
            states = await client.read_flow_run_states(UUID(run_id))
        return sorted((s.type.value, s.timestamp.timestamp()) for s in states)

    return sorted(asyncio.run(go()), key=lambda s: s[1])


def api_lines(platform: Any, run_id: str) -> list[tuple[str, str]]:
    """(logger, message) of every log line of the run in the API (the engine's Completed
    lines left out: the CLI does not print them)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    async def go() -> list[tuple[str, str]]:
        async with platform.client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)])),
                sort=LogSort.TIMESTAMP_ASC,
                limit=200,
            )
        return [(log.name, log.message) for log in logs]

    return [
        (name, message)
        for name, message in asyncio.run(go())
        if not message.endswith("Finished in state Completed()")
    ]


def cli(env: dict[str, str], *args: str) -> tuple[str, float, float]:
    """Run ``quayside ARGS``; (stdout, wall seconds, epoch seconds at its exit).

    Raises:
        RuntimeError: it exited non-zero.
    """
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    ended_at = time.time()
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"quayside {' '.join(args)}: {done.stdout[-1500:]}{done.stderr}")
    return done.stdout, wall, ended_at


def measure_one(platform: Any, env: dict[str, str], kind: str, *args: str) -> Measured:
    out, wall, ended_at = cli(env, *args)
    found = re.search(r"/runs/flow-run/([0-9a-f-]{36})", out)
    if found is None:
        raise RuntimeError(f"no run URL in the output of quayside {' '.join(args)}:\n{out}")
    run_id = found.group(1)
    history = state_history(platform, run_id)
    final = history[-1]
    running = next((ts for state, ts in history if state == "RUNNING"), None)
    lines = api_lines(platform, run_id)
    missing = [m for name, m in lines if m not in out and name != WORKER_LOGGER]
    worker_missing = [m for name, m in lines if m not in out and name == WORKER_LOGGER]
    for what, left in (("run", missing), ("worker", worker_missing)):
        if left:
            log(f"{kind}: {len(left)} {what} log line(s) not printed, first: {left[0][:120]!r}")
    measured = Measured(
        kind,
        wall,
        ended_at - final[1],
        final[1] - running if running is not None else None,
        missing,
        worker_missing,
    )
    log(
        f"{kind}: returned {measured.after_final_s:.2f} s after the final state "
        f"(command {wall:.2f} s, run {measured.flow_s or 0:.2f} s)"
    )
    return measured


@contextmanager
def setup(options: Options) -> Iterator[tuple[Any, dict[str, str]]]:
    """Hosts, repository, a running platform and a DEVELOPER's token; the CLI's env."""
    from quayside.auth import service
    from quayside.ledger.db import make_engine
    from testbed.platform import Platform
    from testbed.sshd import SshdFleet

    options.work_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=options.work_dir)))
        repo = work / "repo"
        make_repo(repo)
        log(f"{NAME}: starting {HOSTS} sshd hosts")
        fleet = SshdFleet(work / "fleet", HOSTS, first_address=FIRST_ADDRESS)
        stack.callback(fleet.close)
        inventory = work / "quayside.yaml"
        write_inventory(inventory, fleet, repo)
        platform = Platform(work / "home", inventory)
        log(f"{NAME}: starting the platform")
        platform.start(timeout=900)
        stack.callback(platform.stop)
        engine = make_engine(f"sqlite:///{platform.home / 'ledger.db'}")
        service.create_user(engine, USER)
        service.grant_role(engine, USER, "DEVELOPER", space="default")
        token = service.create_token(engine, USER)
        engine.dispose()
        env = {**platform.env, "QUAYSIDE_TOKEN": token, "COLUMNS": "500"}
        yield platform, env


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Deploy and roll back ``options.repeat`` times; the ``cli_deploy_tail`` entry."""
    runs: list[Measured] = []
    with setup(options) as (platform, env):
        log(f"{NAME}: first deploy of v1 (untimed)")
        cli(env, "deploy", "shop", "test", "v1")
        for _ in range(options.repeat):
            runs.append(measure_one(platform, env, "deploy", "deploy", "shop", "test", "v2"))
            runs.append(measure_one(platform, env, "rollback", "rollback", "shop", "test"))
    tails = [m.after_final_s for m in runs]
    flows = [m.flow_s for m in runs if m.flow_s is not None]
    entry = make_entry(
        [
            ToolResult(
                "quayside",
                "`quayside deploy` / `quayside rollback`, after the run's final state",
                "from the final state's timestamp in Prefect's state history to the CLI "
                "process's exit: seeing the final state, reading the run's last log lines, "
                "printing the per-host table from the ledger",
                Timing(statistics.median(tails), tails),
            )
        ],
        title="CLI: from the run's final state to the command's return",
        description=(
            f"`quayside deploy shop test v2` and `quayside rollback shop test` ({FILES} files, "
            f"{HOSTS} sshd hosts on loopback) against a real `quayside up`, alternately, as a "
            "DEVELOPER with a token; the table's median is `after_final_s`."
        ),
        command=COMMAND,
        repeat=len(runs),
        extra={
            "after_final_s": round(statistics.median(tails), 3),
            "after_final_max_s": round(max(tails), 3),
            "goal_s": GOAL_S,
            "meets_goal": max(tails) < GOAL_S,
            "command_s": round(statistics.median(m.command_s for m in runs), 3),
            "run_s": round(statistics.median(flows), 3) if flows else None,
            "runs_with_every_log_line": f"{sum(not m.missing for m in runs)} of {len(runs)}",
            "lines_not_printed": [line[:200] for m in runs for line in m.missing],
            "worker_lines_not_printed": sum(len(m.worker_missing) for m in runs),
        },
        notes=[
            "`command_s`: median wall time of the whole command (Python and Prefect imports, "
            "the token check, creating the run, the worker's poll, the run, the tail); "
            "`run_s`: the run's own time, Running -> final state.",
            "`runs_with_every_log_line`: runs whose every log line from the run's own process "
            "in the API (read after the command returned) was printed by the command; "
            "`lines_not_printed` lists any that were not. `worker_lines_not_printed`: the "
            "worker's lines about a run (its own process, its own 2 s batches) that arrived "
            "only after the command returned.",
        ],
        machine=machine_info(),
    )
    return {"cli_deploy_tail": entry}
