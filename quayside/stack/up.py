"""``quayside up``: migrate the ledger, start Prefect server + UI, register the catalogue,
start a worker and the gateway, print the URLs, and stop everything on Ctrl-C.

Everything runs with umask 077 in a private data directory (:mod:`quayside.stack.data_dir`),
and the Prefect API requires its auth string (:mod:`quayside.api_auth`); served off loopback
(``--listen``) only with a string the operator gave (:mod:`quayside.stack.listen`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from quayside.api_auth import (
    FILE_SETTING,
    SERVER_SETTING,
    auth_env,
    operator_auth_string,
    server_auth_string,
)
from quayside.executors.control import close_masters, control_dir
from quayside.settings import Settings
from quayside.stack.api_tls import CERT_FILE_SETTING, write_api_ca
from quayside.stack.data_dir import PRIVATE_UMASK, prepare_data_dir
from quayside.stack.listen import refuse_unprotected
from quayside.stack.parent_death import preexec
from quayside.stack.processes import (
    api_ca_path,
    gateway_process,
    platform_env,
    server_process,
    worker_process,
)
from quayside.stack.stale_children import end_stale_children, pid_file
from quayside.stack.supervisor import (
    StackError,
    Supervisor,
    home_lock,
    port_free,
    quiet_when_gone,
)
from quayside.stack.sweep_process import BackgroundSweep, start_sweep

Say = Callable[[str], None]


def check_ports(settings: Settings) -> None:
    for what, host, port in (
        ("Prefect server", settings.prefect_bind, settings.prefect_port),
        ("gateway", settings.gateway_host, settings.gateway_port),
    ):
        if not port_free(host, port):
            raise StackError(
                f"{host}:{port} for the {what} is already in use",
                hint="stop whatever listens there, or choose another port with "
                "QUAYSIDE_PREFECT_PORT / QUAYSIDE_GATEWAY_PORT",
            )


def register(env: dict[str, str], project_dir: Path, log_file: Path) -> None:
    """Register the work pool, block types and deployments (in a child process, so that it
    uses exactly the platform's Prefect settings)."""
    with log_file.open("ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "quayside.deployments", "register"],
            env=env,
            cwd=project_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
            preexec_fn=preexec(),
        )
    if done.returncode != 0:
        raise StackError("registering deployments failed", hint=f"see {log_file}")


def run_up(
    settings: Settings, project_dir: Path, say: Say, auth_string_file: Path | None = None
) -> None:
    """Run the platform in the foreground until SIGINT/SIGTERM/SIGHUP (a closed terminal).

    Args:
        auth_string_file: the operator's file holding the Prefect API's auth string
            (``--auth-string-file``; else ``QUAYSIDE_PREFECT_AUTH_STRING_FILE``).

    Raises:
        StackError: the data directory is open to other users, a port is taken, another
            ``up`` holds the data directory, or a process failed to start or died.
        InputError: a setting is refused, or the console would face the network without an
            auth string the operator chose (before anything is created).
        APIAuthError: the auth string file cannot be read.
    """
    env = platform_env(settings, project_dir, os.environ)  # refuses bad settings first
    say = quiet_when_gone(say)  # a closed terminal must not stop `up` from stopping
    operator_auth = operator_auth_string(os.environ, auth_string_file)
    refuse_unprotected(settings, operator_auth)
    auth_source = _auth_source(auth_string_file) if operator_auth else ""
    old_umask = os.umask(PRIVATE_UMASK)  # inherited by every process started below
    try:
        prepare_data_dir(settings.home)
        _run_locked(settings, project_dir, env, operator_auth, auth_source, say)
    finally:
        os.umask(old_umask)


def _auth_source(auth_string_file: Path | None) -> str:
    """Where the operator's string came from, for the start-up lines (never the string)."""
    if auth_string_file is not None:
        return f"{auth_string_file}"
    if os.environ.get(FILE_SETTING):
        return f"{os.environ[FILE_SETTING]} ({FILE_SETTING})"
    return SERVER_SETTING


def _run_locked(
    settings: Settings,
    project_dir: Path,
    env: dict[str, str],
    operator_auth: str | None,
    auth_source: str,
    say: Say,
) -> None:
    from quayside.demo.create import NEXT_STEP as DEMO_NEXT_STEP
    from quayside.demo.create import first_run_demo
    from quayside.ledger.db import migrate

    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    started_at = datetime.now(UTC)  # runs Running from before this had no process of ours
    with home_lock(settings.home):
        stale = end_stale_children(settings.home)  # a previous `up` that was killed
        if stale:
            say(f"ended {len(stale)} process(es) a killed `quayside up` left running here")
        check_ports(settings)
        env.update(auth_env(server_auth_string(settings, operator_auth)))
        (settings.home / "logs").mkdir(parents=True, exist_ok=True)
        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        if env.get(CERT_FILE_SETTING) == str(api_ca_path(settings)):
            write_api_ca(api_ca_path(settings))
        say(f"data directory  {settings.home}")
        source = f"{auth_source}, copied to " if operator_auth else ""
        say(f"API auth        {source}{settings.api_auth_path} (the UI's login asks for it)")
        migrate(settings.database_url)
        say("ledger          migrated")
        demo = first_run_demo(settings, say, actor="quayside up")  # no inventory: the demo
        sup = Supervisor(env, project_dir, record=pid_file(settings.home))
        old_int = signal.signal(signal.SIGINT, request_stop)
        old_term = signal.signal(signal.SIGTERM, request_stop)
        old_hup = signal.signal(signal.SIGHUP, request_stop)
        sweep: BackgroundSweep | None = None
        try:
            # the gateway needs only the ledger to start: it starts while the server does
            server = server_process(settings)
            server_proc = sup.start(server)
            gateway = gateway_process(settings)
            gateway_proc = sup.start(gateway)
            sup.wait_healthy(server, server_proc, timeout=180)
            listening = (
                f" (listening on {settings.prefect_bind})"
                if settings.prefect_bind != settings.prefect_host
                else ""
            )
            say(f"Prefect server  {settings.prefect_ui_url}{listening}")
            register(env, project_dir, settings.home / "logs" / "register.log")
            say("deployments     registered")
            sup.start(worker_process(settings))  # after the pool exists with our command
            sup.wait_healthy(gateway, gateway_proc, timeout=60)
            say(f"gateway         {settings.gateway_url}")
            say(f"Quayside is up: UI {settings.prefect_ui_url}  gateway {settings.gateway_url}")
            # releases whose runs died with a previous platform: reconciled in the background
            sweep = start_sweep(
                env, project_dir, settings.home / "logs" / "reconcile.log", started_at, say
            )
            if demo:
                say(DEMO_NEXT_STEP)
            say(f"logs in {settings.home / 'logs'}; press Ctrl-C to stop")
            sup.watch(lambda: stop_requested)
        finally:
            say("stopping ...")
            if sweep is not None:
                sweep.stop()
            sup.stop()
            close_masters(control_dir(settings.home))  # the flow runs' persisted SSH connections
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGHUP, old_hup)
            say("stopped")
