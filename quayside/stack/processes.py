"""What ``quayside up`` starts, as data: argv and environment of each process (pure)."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from quayside.errors import InputError
from quayside.settings import Settings
from quayside.stack.api_tls import CERT_FILE_SETTING, needs_api_ca

WORK_POOL = "quayside"
TASK_RUN_BATCH = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"
LATE_AFTER = "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS"
TASK_RUN_FLUSH = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"
UI_API_URL = "PREFECT_UI_API_URL"
UI_URL = "PREFECT_UI_URL"
CSRF_SUPPORT = "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"
#: what Prefect's settings read as true
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
VERSION_CHECK = "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED"
#: the server settings that turn its CSRF protection on (the clients must then fetch tokens)
CSRF_PROTECTION = (
    "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED",
    "PREFECT_SERVER_CSRF_PROTECTION_ENABLED",
)
#: what the UI is told to call: its own origin's /api, so it works however the browser reached
#: it (127.0.0.1, a LAN address, a TLS reverse proxy); Prefect's default names the API URL
#: the server's clients use, which a browser on another machine cannot reach
UI_API_DEFAULT = "/api"


#: seconds between the task-run recorder's writes (see :func:`task_run_flush_interval`)
TASK_RUN_FLUSH_DEFAULT = "1"


def task_run_flush_interval(base: Mapping[str, str]) -> str:
    """The task-run recorder's flush interval for the server: the operator's, or 1 second.

    Prefect 3.8 passes ``int(flush_interval)`` to the recorder's ``asyncio.sleep``: a value
    below 1 becomes ``sleep(0)`` and the recorder spins, a full CPU core for as long as the
    server runs (measured here, idle: 1.0 CPU-s/s with 0.5, 0.05 with 1).

    Raises:
        InputError: the operator's value is not a finite number of at least 1.
    """
    value = base.get(TASK_RUN_FLUSH, TASK_RUN_FLUSH_DEFAULT)
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not (math.isfinite(seconds) and seconds >= 1):  # NaN and infinity too (int() fails)
        raise InputError(
            f"{TASK_RUN_FLUSH}={value!r}: Prefect rounds it down to whole seconds, and below "
            "1 its task-run recorder never sleeps (a CPU core busy for good); set a number of "
            "seconds, 1 or more, or unset it (Quayside uses 1)"
        )
    return value


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    health_url: str | None
    log_file: Path


def csrf_support(base: Mapping[str, str]) -> str:
    """``"true"`` when the environment turns the server's CSRF protection on (Prefect's
    default is off), else ``"false"``: clients fetch CSRF tokens only where they are needed."""
    on = any(base.get(name, "").strip().lower() in TRUE_WORDS for name in CSRF_PROTECTION)
    return "true" if on else "false"


def platform_env(settings: Settings, project_dir: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Environment shared by every process of the platform (and the flow runs it starts).

    The operator's ``PREFECT_UI_URL`` (the console's address behind a reverse proxy: run
    links) and ``PREFECT_UI_API_URL`` are kept."""
    env = dict(base)
    env.update(
        {
            "PREFECT_HOME": str(settings.prefect_home),
            "PREFECT_API_URL": settings.prefect_api_url,
            UI_URL: base.get(UI_URL) or settings.prefect_ui_url,
            UI_API_URL: base.get(UI_API_URL)
            or base.get("PREFECT_SERVER_UI_API_URL")
            or UI_API_DEFAULT,
            "PREFECT_SERVER_API_HOST": settings.prefect_bind,
            "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            # how often the worker asks for runs to start: the floor of trigger latency
            # (bench/trigger_latency.py); one cheap API call per second
            "PREFECT_WORKER_QUERY_SECONDS": base.get("PREFECT_WORKER_QUERY_SECONDS", "1"),
            "PREFECT_WORKER_PREFETCH_SECONDS": base.get("PREFECT_WORKER_PREFETCH_SECONDS", "5"),
            # every Prefect client (each run process opens several) would otherwise first ask
            # the server for its version and for a CSRF token, which this server, with CSRF
            # protection off, refuses: 5 of the ~33 API requests of a git deploy's run
            CSRF_SUPPORT: base.get(CSRF_SUPPORT) or csrf_support(base),
            VERSION_CHECK: base.get(VERSION_CHECK, "false"),
            # the server records task runs from their events; Prefect's default writes each
            # event in its own SQLite transaction (batch size 1), and a release's 20 per-host
            # tasks then kept the database busy for the next run. Batched, a task's state
            # shows in the UI up to FLUSH seconds later (Prefect's default: 5).
            TASK_RUN_BATCH: base.get(TASK_RUN_BATCH, "200"),
            # a release waiting for a free worker slot is queued, not late: Prefect's 15 s
            # set every queued run of a burst Late (a state change and its events each: 37%
            # of the services' CPU while 50 releases ran); after 2 minutes it still shows
            LATE_AFTER: base.get(LATE_AFTER, "120"),
            TASK_RUN_FLUSH: task_run_flush_interval(base),
            "QUAYSIDE_HOME": str(settings.home),
            "QUAYSIDE_DATABASE_URL": settings.database_url,
            "QUAYSIDE_INVENTORY": str(settings.inventory_path.resolve()),
            "QUAYSIDE_PROJECT_DIR": str(project_dir),
            "QUAYSIDE_GATEWAY_HOST": settings.gateway_host,
            "QUAYSIDE_GATEWAY_PORT": str(settings.gateway_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if needs_api_ca(settings.prefect_api_url, base):
        env[CERT_FILE_SETTING] = str(api_ca_path(settings))
    pythonpath = [str(project_dir)]
    if base.get("PYTHONPATH"):
        pythonpath.append(base["PYTHONPATH"])
    env["PYTHONPATH"] = ":".join(pythonpath)
    return env


def api_ca_path(settings: Settings) -> Path:
    """Where ``quayside up`` writes the CA file of :mod:`quayside.stack.api_tls`."""
    return settings.prefect_home / "api-ca.pem"


def server_process(settings: Settings) -> ProcessSpec:
    """``prefect server start`` through :mod:`quayside.stack.server` (busy SQLite requests
    retried in the server)."""
    return ProcessSpec(
        name="prefect-server",
        argv=[
            sys.executable, "-m", "quayside.stack.server",
            "--host", settings.prefect_bind, "--port", str(settings.prefect_port),
            "--analytics-off",
        ],
        health_url=f"{settings.prefect_api_url}/health",
        log_file=settings.home / "logs" / "prefect-server.log",
    )  # fmt: skip


def worker_process(settings: Settings, pool: str = WORK_POOL) -> ProcessSpec:
    """Prefect's process worker on the pool (:mod:`quayside.stack.worker`: taking runs as
    Prefect announces them), with the fork server (:mod:`quayside.stack.forkserver`) that
    starts its flow runs pre-imported."""
    return ProcessSpec(
        name="worker",
        argv=[
            sys.executable, "-m", "quayside.stack.worker",
            "--pool", pool, "--type", "process", "--name", f"quayside-{settings.home.name}",
        ],
        health_url=None,
        log_file=settings.home / "logs" / "worker.log",
    )  # fmt: skip


def gateway_process(settings: Settings) -> ProcessSpec:
    return ProcessSpec(
        name="gateway",
        argv=[sys.executable, "-m", "quayside.gateway"],
        health_url=f"{settings.gateway_url}/health",
        log_file=settings.home / "logs" / "gateway.log",
    )
