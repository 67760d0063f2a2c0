"""What a user waits for: ``quayside deploy APP ENV REF`` of a one-file change to 20 hosts,
from the command's start to its return with every host switched, next to 20 parallel
``rsync --link-dest`` + symlink switch doing the same in the same run.

One result, ``cli_deploy_e2e`` (issue 16): ``quayside_s`` (the command, end to end) and
``ratio_vs_parallel_rsync_link_dest``. The command is the installed entry point
(``.venv/bin/quayside``, what ``uv run quayside`` runs) as a subprocess, run by a DEVELOPER
with a token, against a real ``quayside up`` (Prefect server, worker with the fork server,
gateway): it checks the token, creates the run through the API, the worker picks it up and
forks the run process, the flow deploys, and the CLI follows the run's logs and prints the
per-host table. The payload, hosts and rsync baseline are those of ``git_deploy_incremental``
(:mod:`bench.git_deploy`): 5,000 files / 50 MB, one file changed, sshd hosts on loopback.

Each run's Prefect state history splits the wall time (:func:`phases`): submitting, the
worker's pickup, the run process's start, the flow, and the CLI's tail after the final state
(also measured on its own by ``cli_deploy_tail``).
"""

from __future__ import annotations

import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cli_deploy_tail import state_history
from bench.git_deploy.app import CHANGED_FILE, TAG_V1, TAG_V2
from bench.git_deploy.next_release import warm_mirror
from bench.git_deploy.quayside_runs import ENV, AppNames, app_names
from bench.git_deploy.recorder import Spec
from bench.git_deploy.session import open_session
from bench.harness import (
    PROJECT_DIR,
    Options,
    ToolResult,
    log,
    machine_info,
    make_entry,
    reproduce_command,
)

NAME = "cli_deploy_e2e"
COMMAND = reproduce_command(NAME)
RESULTS = ("cli_deploy_e2e",)
#: Goal (issue 16): the command at least this many times faster than the rsync loop
GOAL_RATIO = 3.0
USER = "bench-dev"
RSYNC_KEY = "parallel_rsync_link_dest"
#: settings the benchmark sets for its own in-process flow calls, not a user's shell's
IN_PROCESS_ONLY = ("PREFECT_LOGGING_LEVEL", "PREFECT_API_SSL_CERT_FILE", "PREFECT_API_AUTH_STRING")

CONTEXT = {
    "cli_deploy_e2e": (
        f"Goal (issue 16): at least {GOAL_RATIO:g}x faster than the parallel rsync loop end to "
        "end. Measured before: the flow body alone 0.74 s against 7.05 s for 20 parallel "
        "`rsync --link-dest`, and the command over 30 s (the CLI then waited a fixed 30 s for "
        "the run's last logs). Session 11: 3.02 s (submit 0.35, pickup 0.92 at a 1 s poll, "
        "start 0.49, flow 1.04, tail 0.29) - 1.77x. Session 12: the worker takes a run "
        "when Prefect's event stream announces it (pickup 0.09 s), runs import their flow by "
        "name from the fork server's preloaded modules (PREFECT__FLOW_ENTRYPOINT, no pull step, "
        "no second execution of the flow file) and the fork server preloads what every run "
        "imported after the fork: 2.11 s end to end, 2.08x (submit 0.33, start 0.37, flow "
        "1.01, tail 0.29). Session 13 (this run), from py-spy profiles of the run process: "
        "the fork server freezes its objects for the garbage collector (gc.freeze: a run's "
        "first collections copied the pages it shares with the server, and its threads waited "
        "~0.2 s to start), builds the ledger's mappers and Prefect's deferred models once, "
        "keeps Prefect's settings when the run's environment is its own, and parses a changed "
        "inventory before it forks; Prefect's watch for an outside suspension runs beside the "
        "flow instead of holding Running back and joining after the final state; a body's sync "
        "twin derives no parameter schema (0.2 s per run); runs skip the version and "
        "CSRF-token requests; the worker computes its settings environment once; a completed "
        "run sends its log lines and labels itself before its final state, so the command "
        "returns after one more read of the logs instead of waiting for the run's process to "
        "end; the last host's progress update goes out at once."
    )
}


@dataclass(frozen=True)
class CliRun:
    """One timed command: its output, the epoch seconds when it started and exited, and the
    CPU seconds its process used (user + system: unlike wall time, barely moved by other
    work on the machine)."""

    stdout: str
    started_at: float
    ended_at: float
    cpu_s: float = 0.0


def quayside_argv(*args: str, bin_dir: Path | None = None) -> list[str]:
    """``quayside ARGS`` as a user runs it: the venv's entry point, else ``python -m``."""
    entry = (bin_dir or Path(sys.executable).parent) / "quayside"
    if entry.is_file():
        return [str(entry), *args]
    return [sys.executable, "-m", "quayside.cli.main", *args]


def deploy_argv(app: str, env: str, ref: str, bin_dir: Path | None = None) -> list[str]:
    """``quayside deploy APP ENV REF`` (following the run to its end, the default)."""
    return quayside_argv("deploy", app, env, ref, bin_dir=bin_dir)


def cli_env(platform_env: Mapping[str, str], token: str) -> dict[str, str]:
    """The environment of a user's shell pointed at the platform, with their token: the
    platform's settings, without what the benchmark set for its own in-process flow calls."""
    env = {k: v for k, v in platform_env.items() if k not in IN_PROCESS_ONLY}
    env["QUAYSIDE_TOKEN"] = token
    env["COLUMNS"] = "500"
    return env


def run_id_of(stdout: str) -> str:
    """The flow run id in the command's ``started ... <UI URL>`` line.

    Raises:
        ValueError: no run URL in the output.
    """
    found = re.search(r"/runs/flow-run/([0-9a-f-]{36})", stdout)
    if found is None:
        raise ValueError(f"no run URL in the command's output:\n{stdout[-1500:]}")
    return found.group(1)


PHASES = ("submit_s", "pickup_s", "start_s", "run_s", "after_final_s")


def phases(
    started_at: float, history: Sequence[tuple[str, float]], ended_at: float
) -> dict[str, float | None]:
    """Split one command's wall time with the run's state history ((type, epoch s), oldest
    first) into :data:`PHASES`, which add up to the wall time:

    - ``submit_s``: command start -> the run's first state (Python start-up, imports, the
      token check, the run created through the API);
    - ``pickup_s``: first state -> Pending (the worker taking the run: on Prefect's event, else
      at its poll);
    - ``start_s``: Pending -> Running (the run's process: fork server, pull step, engine);
    - ``run_s``: Running -> the final state (the flow);
    - ``after_final_s``: the final state -> the command's exit (last logs, per-host table).

    A phase whose states are missing is None.
    """

    def first(kind: str) -> float | None:
        return next((ts for state, ts in history if state == kind), None)

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 3)

    created = history[0][1] if history else None
    pending, running = first("PENDING"), first("RUNNING")
    final = history[-1][1] if history else None
    return {
        "submit_s": span(started_at, created),
        "pickup_s": span(created, pending),
        "start_s": span(pending, running),
        "run_s": span(running, final),
        "after_final_s": span(final, ended_at),
    }


def median_phases(runs: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Median of each phase over the runs that have it."""
    out: dict[str, float | None] = {}
    for key in PHASES:
        values = [v for r in runs if (v := r.get(key)) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    return out


def run_cli(argv: Sequence[str], env: Mapping[str, str], timeout: float = 900) -> CliRun:
    """Run the command to its exit.

    Raises:
        RuntimeError: it exited non-zero (its output's tail in the message).
    """
    cpu_before = children_cpu_s()
    started_at = time.time()
    done = subprocess.run(
        list(argv),
        env=dict(env),
        cwd=PROJECT_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    ended_at = time.time()
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[-4:])} exited with {done.returncode}: "
            f"{done.stdout[-1500:]}{done.stderr[-1500:]}"
        )
    return CliRun(done.stdout, started_at, ended_at, round(children_cpu_s() - cpu_before, 3))


def children_cpu_s() -> float:
    """User + system CPU seconds of every child process this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def create_token(ledger_path: Path) -> str:
    """A DEVELOPER's API token in the platform's ledger (the user who deploys)."""
    from quayside.auth import service
    from quayside.ledger.db import make_engine

    engine = make_engine(f"sqlite:///{ledger_path}")
    try:
        service.create_user(engine, USER)
        service.grant_role(engine, USER, "DEVELOPER", space="default")
        return service.create_token(engine, USER)
    finally:
        engine.dispose()


def build_entry(
    tools: Sequence[ToolResult],
    run_phases: Sequence[Mapping[str, float | None]],
    *,
    command_cpu_s: Sequence[float] = (),
    hosts: int,
    files: int,
    changed_file: str,
    repeat: int,
    notes: Sequence[str] = (),
    machine: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``cli_deploy_e2e`` entry: the two tools, the goal, and the command's phases."""
    by_key = {t.key: t for t in tools}
    quayside, rsync = by_key.get("quayside"), by_key.get(RSYNC_KEY)
    ratio: float | None = None
    if quayside and quayside.timing and rsync and rsync.timing and quayside.timing.median_s > 0:
        ratio = rsync.timing.median_s / quayside.timing.median_s
    extra: dict[str, Any] = {
        "hosts": hosts,
        "changed_files": 1,
        "goal_ratio": GOAL_RATIO,
        "meets_goal": None if ratio is None else ratio >= GOAL_RATIO,
        **median_phases(run_phases),
        "command_cpu_s": round(statistics.median(command_cpu_s), 3) if command_cpu_s else None,
        "phases_runs": [dict(p) for p in run_phases],
    }
    return make_entry(
        tools,
        title="CLI deploy end to end: `quayside deploy` of a one-file change",
        description=(
            f"`quayside deploy APP bench v1.0.1` typed by a DEVELOPER with a token, against a "
            f"real `quayside up`, on {hosts} sshd hosts on loopback that hold the previous "
            f"release ({files:,} files; {changed_file} changed), from the command's start to "
            f"its return with every host switched; next to {hosts} parallel "
            "`rsync --link-dest` + ssh symlink switch doing the same in the same run."
        ),
        command=COMMAND,
        repeat=repeat,
        extra=extra,
        notes=notes,
        machine=machine,
    )


NOTES = (
    "The command's wall time split by the run's state history (medians; each run in "
    "`phases_runs`; they add up to the command's time): `submit_s` from the command's start "
    "to the run's first state (Python start-up and imports, the token check, the run created "
    "through the API), `pickup_s` to Pending (the worker takes the run when Prefect's event "
    "stream announces it; its 1 s poll is the fallback), `start_s` to "
    "Running (the run's process: the fork server, the deployment's pull step, Prefect's "
    "engine), `run_s` to the final state (the flow itself), `after_final_s` to the command's "
    "exit (its last log lines and the per-host table). `command_cpu_s`: the CPU time of the "
    "command's own process (user + system, median), which other work on the machine "
    "barely changes: on a busy machine `submit_s` is mostly that CPU time, stretched.",
    "Before each timed command the hosts get the previous release from Quayside (untimed, "
    "the flow called in-process) and make their background copy of it, as between two "
    "deploys (see `git_deploy_incremental`); the run process reuses the SSH master "
    "connections that release left open (ControlPersist 60 s).",
    "Before the timed runs, one untimed release and the next go to another app of the same "
    "repository, and one untimed `quayside deploy` warms the worker's fork server and the "
    "CLI's files in the page cache.",
    "The rsync baseline is the one of `git_deploy_incremental`: every host at once, "
    "`rsync -a --link-dest=<previous release>` of the new tree into releases/<id>, then the "
    "ssh symlink switch; its hosts hold the previous release from a parallel rsync (untimed).",
)


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Time ``quayside deploy`` and the rsync loop ``options.repeat`` times each."""
    apps = app_names(("e2e",), options.repeat, "warmup-0")
    run_phases: list[dict[str, float | None]] = []
    cpu: list[float] = []
    with ExitStack() as stack:
        session = open_session(stack, options, NAME, apps)
        quayside, roots, app = session.quayside, session.roots, session.app
        hosts = session.fleet.hosts
        env: dict[str, str] = {}
        if quayside is not None:
            env = cli_env(quayside.platform.env, create_token(quayside.platform.home / "ledger.db"))
            warm_mirror(quayside, roots)
            log("  (untimed: one `quayside deploy` to warm the worker and the CLI)")
            roots.use("warmup-0")
            try:
                run_cli(deploy_argv("warmup-0", ENV, TAG_V1), env)
            except RuntimeError as e:  # the timed runs will fail the same way and say so
                log(f"  warm-up deploy FAILED: {e}")
            roots.purge()
        e2e_app = AppNames("e2e")

        def quayside_setup() -> None:
            assert quayside is not None
            quayside.deploy(roots.use(e2e_app.next()).rsplit("/", 1)[1], TAG_V1)
            roots.wait_prepared()

        def quayside_deploy() -> CliRun:
            return run_cli(deploy_argv(roots.label, ENV, TAG_V2), env)

        def rsync_setup() -> None:
            roots.new("linkdest")
            session.rsync.parallel_v1()

        q = session.recorder.tool(
            Spec(
                "quayside",
                "`quayside deploy` (CLI, end to end)",
                "the installed `quayside` command from process start to exit: token check, "
                "run created through the API, the worker woken by Prefect's event, the fork "
                "server's run process, the git_deploy flow on every host, the run's logs "
                "followed and the "
                "per-host table printed",
            ),
            quayside_deploy,
            setup=quayside_setup,
            check=session.check(app.v2_tree),
            unavailable=None if quayside else session.quayside_reason,
        )
        r = session.recorder.tool(
            Spec(
                RSYNC_KEY,
                f"{len(hosts)} × `rsync --link-dest` in parallel",
                "every host at once: `rsync -a --link-dest=<previous release>` of the new tree "
                "into a new releases/<id> (unchanged files become hard links), then the ssh "
                "symlink switch",
            ),
            session.rsync.parallel_v2_link_dest,
            setup=rsync_setup,
            check=session.check(app.v2_tree),
        )
        if quayside is not None and q.timing is not None:
            for done in q.timing.outputs:
                cpu.append(done.cpu_s)
                history = state_history(quayside.platform, run_id_of(done.stdout))
                run_phases.append(phases(done.started_at, history, done.ended_at))
        files = app.files
    machine = machine_info()
    return {
        "cli_deploy_e2e": build_entry(
            [q, r],
            run_phases,
            command_cpu_s=cpu,
            hosts=len(hosts),
            files=files,
            changed_file=CHANGED_FILE,
            repeat=options.repeat,
            notes=NOTES,
            machine=machine,
        )
    }
