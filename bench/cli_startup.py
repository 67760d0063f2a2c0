"""CLI start-up: ``quayside --help``, ``quayside check FILE`` and ``quayside releases APP ENV``
from process start to exit, hyperfine-style (warm-up runs, then repeated timed runs, median),
next to the floor (``python -c pass``) and Prefect's own CLI (``prefect --help``, the same
typer stack).

One result, ``cli_startup``: ``help_s``, ``check_s``, ``releases_s`` (medians), the CPU time
of each, and the cumulative import time of ``quayside.cli.main`` from ``python -X importtime``.
Each command runs the installed entry point (``.venv/bin/quayside``, what ``uv run quayside``
runs) in a scratch data directory: ``check`` validates a small inventory, ``releases`` lists 20
releases from a migrated SQLite ledger. No platform is needed.
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

NAME = "cli_startup"
COMMAND = reproduce_command(NAME)
RESULTS = ("cli_startup",)
#: timed runs per command (at least; ``--repeat`` above it raises it)
RUNS = 15
WARMUP = 2
GOAL_S = 0.5

INVENTORY = """\
hosts:
  web-1: {address: 10.0.0.11, user: deploy}
  web-2: {address: 10.0.0.12, user: deploy}
groups:
  web: [web-1, web-2]
apps:
  shop:
    space: commerce
    repo: git@git.example.com:commerce/shop.git
    deploy_root: /srv/shop
    environments:
      test: {hosts: [web-1]}
      prod: {groups: [web], approval: {required: 1, role: MASTER}}
"""

CONTEXT = {
    "cli_startup": (
        f"Goal (issue 16): each under {GOAL_S:g} s on a busy 2-core machine; measured before "
        "the change: `quayside --help` 4.4 s (1.7 s of CPU), other commands 3-10 s. Where it "
        "went: every command module imported Prefect, SQLAlchemy, Alembic, pydantic and rich "
        "at start-up, typer's rich help imported rich's Markdown renderer, and with "
        "PYTHONDONTWRITEBYTECODE set (as on this machine) and no .pyc files in the virtualenv "
        "every start compiled those libraries from source. Now the command modules import "
        "them in the commands that use them (`tests/unit/test_cli_startup.py` checks that "
        "importing `quayside.cli.main` imports none of them), the help is plain click, the ledger "
        "imports Alembic only to migrate, and `make sync` (part of `make up` and `make test`) "
        "installs with `uv sync --compile-bytecode`; and every command ends without CPython's "
        "teardown of what it loaded (`quayside.cli.process_exit`). What is left: `check` pays "
        "for pydantic and PyYAML (the inventory's models); every command but `--help` for "
        "typer 0.29's option parsing, which imports pydantic and builds a TypeAdapter per "
        "option (about 0.1 s of CPU); `releases` for rich's table. `releases` paid for "
        "SQLAlchemy and the ledger's mapped models too (about 0.4 s of its 0.53 s of CPU, "
        "measured in session 11 with `-X importtime` and cProfile: SQLAlchemy's import 0.22 s, "
        "the ORM and the 17 models 0.15 s, their first query's mapper configuration); it now "
        "reads a SQLite ledger with the standard library's sqlite3, the same SQL that another "
        "database runs through SQLAlchemy (`quayside.ledger.environment_releases`, checked "
        "against `list_releases`/`current_release` on SQLite and PostgreSQL), at about 0.35 s "
        "of CPU. What is left there: the interpreter, typer and the command modules (0.1 s), "
        "typer's pydantic option parsing (0.07-0.1 s), rich and its table (0.08 s)."
    )
}


@dataclass(frozen=True)
class Command:
    key: str
    label: str
    argv: list[str]
    includes: str


@dataclass
class Runs:
    wall_s: list[float]
    cpu_s: list[float]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_once(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv`` (its output discarded).

    Raises:
        RuntimeError: it exited non-zero.
    """
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        list(argv),
        env=env,
        cwd=PROJECT_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]!r}")
    return wall, _children_cpu() - cpu


def hyperfine(commands: Sequence[Command], env: dict[str, str], runs: int) -> dict[str, Runs]:
    """``WARMUP`` untimed runs of each command, then ``runs`` timed rounds (one run of each
    command per round, so load changes touch every command alike)."""
    for command in commands:
        for _ in range(WARMUP):
            time_once(command.argv, env)
    out = {c.key: Runs([], []) for c in commands}
    for _ in range(runs):
        for command in commands:
            wall, cpu = time_once(command.argv, env)
            out[command.key].wall_s.append(wall)
            out[command.key].cpu_s.append(cpu)
    return out


def import_time_s(env: dict[str, str]) -> float:
    """Cumulative import time of ``quayside.cli.main`` (``python -X importtime``), seconds."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import quayside.cli.main"],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \| quayside\.cli\.main$", line)
        if found:
            return int(found.group(1)) / 1e6
    raise RuntimeError("python -X importtime printed no line for quayside.cli.main")


def prepare(work: Path) -> dict[str, str]:
    """A data directory with a migrated ledger holding 20 releases of shop/prod, and an
    inventory; the environment the commands run with."""
    home = work / "home"
    home.mkdir(mode=0o700, parents=True)
    inventory = work / "quayside.yaml"
    inventory.write_text(INVENTORY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QUAYSIDE_"))}
    env.update(
        {
            "QUAYSIDE_HOME": str(home),
            "QUAYSIDE_INVENTORY": str(inventory),
            "COLUMNS": "120",
        }
    )
    setup = (
        "from quayside.ledger.db import make_engine, migrate\n"
        "from quayside.ledger.models import ReleaseKind, ReleaseStatus\n"
        "from quayside.ledger.releases import finish_release, mark_running, start_release\n"
        f"url = 'sqlite:///{home / 'ledger.db'}'\n"
        "migrate(url)\n"
        "engine = make_engine(url)\n"
        "for i in range(20):\n"
        "    r = start_release(engine, 'shop', 'prod', ReleaseKind.deploy, requested_by='dev',\n"
        "                      version=f'v1.{i}', commit_sha='0' * 40)\n"
        "    mark_running(engine, r.id)\n"
        "    finish_release(engine, r.id, ReleaseStatus.succeeded)\n"
    )
    subprocess.run([sys.executable, "-c", setup], env=env, cwd=PROJECT_DIR, check=True)
    return env


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Time the commands; the ``cli_startup`` entry of results.json."""
    import tempfile

    runs = max(RUNS, options.repeat)
    bin_dir = Path(sys.executable).parent
    quayside = str(bin_dir / "quayside")
    options.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-", dir=options.work_dir) as scratch:
        work = Path(scratch)
        env = prepare(work)
        inventory = env["QUAYSIDE_INVENTORY"]
        commands = [
            Command(
                "help",
                "`quayside --help`",
                [quayside, "--help"],
                "process start to exit: interpreter, typer, the command modules, click's help",
            ),
            Command(
                "check",
                "`quayside check FILE`",
                [quayside, "check", inventory],
                "as `--help`, plus PyYAML and the inventory's pydantic models, and validating "
                "a 2-host, 1-app inventory",
            ),
            Command(
                "releases",
                "`quayside releases shop prod`",
                [quayside, "releases", "shop", "prod"],
                "as `--help`, plus typer's option parsing (pydantic), a query of 20 releases "
                "in the SQLite ledger (sqlite3) and rich's table",
            ),
            Command(
                "python",
                "`python -c pass` (the floor)",
                [sys.executable, "-c", "pass"],
                "the interpreter starting and exiting, nothing imported",
            ),
            Command(
                "prefect_help",
                "`prefect --help` (Prefect's own CLI)",
                [str(bin_dir / "prefect"), "--help"],
                "Prefect 3.8's CLI in the same environment",
            ),
        ]
        log(f"{NAME}: {WARMUP} warm-up runs, then {runs} timed rounds of {len(commands)}")
        measured = hyperfine(commands, env, runs)
        imports = import_time_s(env)
    tools = [
        ToolResult(
            c.key,
            c.label,
            c.includes,
            Timing(statistics.median(measured[c.key].wall_s), measured[c.key].wall_s),
        )
        for c in commands
    ]
    medians = {c.key: statistics.median(measured[c.key].wall_s) for c in commands}
    cpu = {c.key: round(statistics.median(measured[c.key].cpu_s), 3) for c in commands}
    ours = ("help", "check", "releases")
    entry = make_entry(
        tools,
        title="CLI start-up: `--help`, `check`, `releases`",
        description=(
            "Each command from process start to exit, run as a user runs it (the installed "
            "`quayside` entry point, output discarded); median of repeated runs after warm-up "
            "runs, hyperfine-style, with Python's own start as the floor and Prefect's CLI "
            "for comparison. Ratios are not computed (there is no Quayside reference here)."
        ),
        command=COMMAND,
        repeat=runs,
        extra={
            "goal_s": GOAL_S,
            "meets_goal": all(medians[k] < GOAL_S for k in ours),
            "cpu_s": cpu,
            "import_cli_main_s": round(imports, 3),
        },
        notes=[
            "`cpu_s`: median user + system CPU seconds of each command (from the children's "
            "rusage), which load on the machine inflates less than wall time.",
            "`import_cli_main_s`: cumulative import time of `quayside.cli.main` reported by "
            "`python -X importtime` (one run): typer and the command modules, nothing else.",
        ],
        machine=machine_info(),
    )
    return {"cli_startup": entry}
