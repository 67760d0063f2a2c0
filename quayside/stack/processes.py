"""What ``quayside up`` starts, as data: argv and environment of each process (pure)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from quayside.settings import Settings

WORK_POOL = "quayside"
TASK_RUN_BATCH = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"
TASK_RUN_FLUSH = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    health_url: str | None
    log_file: Path


def platform_env(settings: Settings, project_dir: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Environment shared by every process of the platform (and the flow runs it starts)."""
    env = dict(base)
    env.update(
        {
            "PREFECT_HOME": str(settings.prefect_home),
            "PREFECT_API_URL": settings.prefect_api_url,
            "PREFECT_UI_URL": settings.prefect_ui_url,
            "PREFECT_SERVER_API_HOST": settings.prefect_host,
            "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            # how often the worker asks for runs to start: the floor of trigger latency
            # (bench/trigger_latency.py); one cheap API call per second
            "PREFECT_WORKER_QUERY_SECONDS": base.get("PREFECT_WORKER_QUERY_SECONDS", "1"),
            "PREFECT_WORKER_PREFETCH_SECONDS": base.get("PREFECT_WORKER_PREFETCH_SECONDS", "5"),
            # the server records task runs from their events; Prefect's default writes each
            # event in its own SQLite transaction (batch size 1), and a release's 20 per-host
            # tasks then kept the database busy for the next run (measured: 20-task flows back
            # to back 0.7-1.7 s, 0.6-1.0 s batched; the next flow run started 0.9-1.4 s late,
            # 0.4-0.5 s batched). Batched, a task's state shows in the UI up to 0.5 s later.
            TASK_RUN_BATCH: base.get(TASK_RUN_BATCH, "200"),
            TASK_RUN_FLUSH: base.get(TASK_RUN_FLUSH, "0.5"),
            "QUAYSIDE_HOME": str(settings.home),
            "QUAYSIDE_DATABASE_URL": settings.database_url,
            "QUAYSIDE_INVENTORY": str(settings.inventory_path.resolve()),
            "QUAYSIDE_PROJECT_DIR": str(project_dir),
            "QUAYSIDE_GATEWAY_HOST": settings.gateway_host,
            "QUAYSIDE_GATEWAY_PORT": str(settings.gateway_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    pythonpath = [str(project_dir)]
    if base.get("PYTHONPATH"):
        pythonpath.append(base["PYTHONPATH"])
    env["PYTHONPATH"] = ":".join(pythonpath)
    return env


def server_process(settings: Settings) -> ProcessSpec:
    """``prefect server start`` through :mod:`quayside.stack.server` (busy SQLite requests
    retried in the server)."""
    return ProcessSpec(
        name="prefect-server",
        argv=[
            sys.executable, "-m", "quayside.stack.server",
            "--host", settings.prefect_host, "--port", str(settings.prefect_port),
            "--analytics-off",
        ],
        health_url=f"{settings.prefect_api_url}/health",
        log_file=settings.home / "logs" / "prefect-server.log",
    )  # fmt: skip


def worker_process(settings: Settings, pool: str = WORK_POOL) -> ProcessSpec:
    """``prefect worker start`` on the process pool, with the fork server
    (:mod:`quayside.stack.forkserver`) that starts its flow runs pre-imported."""
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
