"""``python -m quayside.stack.worker ARGS``: the platform's Prefect process worker, with the
fork server (:mod:`quayside.stack.forkserver`) next to it, early starts
(:mod:`quayside.stack.worker_wake`) and no polls while its slots are full
(:mod:`quayside.stack.worker_polls`).

ARGS are ``prefect worker start``'s: ``--pool`` (required), ``--type process``, ``--name``,
``--limit``, ``--work-queue``. With those, this process runs Prefect's own ``ProcessWorker``
(as ``prefect worker start`` does: same class, same settings, same signal handling) and,
beside its poll, starts a run as soon as the server announces it. Any other option, another
worker type, or ``QUAYSIDE_WORKER_WAKE=0`` makes it become ``prefect worker start ARGS``.

The fork server stays a child of the worker, in its process group, so stopping the worker's
group (what ``quayside up`` does) stops it too; and it gets SIGTERM when the worker dies
(:mod:`quayside.stack.parent_death`). ``QUAYSIDE_FORKSERVER=0`` starts no fork
server (flow runs then start with Prefect's own ``python -m prefect.engine``).

A worker given the Prefect API's auth string as a file (``QUAYSIDE_PREFECT_AUTH_STRING_FILE``,
a compose secret on another machine) sends it: Prefect's worker and the flow runs it starts
read only ``PREFECT_API_AUTH_STRING``, which is set from the file before they start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

from quayside.api_auth import export_client_auth
from quayside.stack.parent_death import preexec


def worker_options(args: list[str]) -> argparse.Namespace | None:
    """The options this module runs the worker with itself, or None when ``args`` hold
    anything else (then Prefect's own command runs them)."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--pool", "-p")
    parser.add_argument("--type", "-t", default="process")
    parser.add_argument("--name", "-n")
    parser.add_argument("--limit", "-l", type=int)
    parser.add_argument("--work-queue", "-q", action="append", dest="work_queues")
    try:
        options, rest = parser.parse_known_args(args)
    except argparse.ArgumentError:
        return None
    if rest or not options.pool or options.type != "process":
        return None
    return options


async def run_worker(options: argparse.Namespace) -> None:
    """Prefect's ``ProcessWorker`` on ``options.pool`` until stopped, polled early on each
    announced run."""
    from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS
    from prefect.workers.process import ProcessWorker

    from quayside.stack.job_environment import SettledEnvironmentConfiguration
    from quayside.stack.worker_polls import poll_when_free
    from quayside.stack.worker_wake import wake_on_scheduled

    worker = ProcessWorker(
        name=options.name,
        work_pool_name=options.pool,
        work_queues=options.work_queues,
        limit=options.limit,
        heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()),
    )
    # the same job configuration, its settings' environment computed once (not per run)
    worker.job_configuration = SettledEnvironmentConfiguration
    due = asyncio.Event()  # poll now: a run of the pool was announced, or a slot came free
    poll_when_free(worker, due)
    wake = asyncio.create_task(wake_on_scheduled(worker, options.pool, due))
    try:
        await worker.start(printer=print)
    finally:
        wake.cancel()


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    export_client_auth(os.environ)  # before the fork server and the worker read it
    if os.environ.get("QUAYSIDE_FORKSERVER", "1") != "0":
        from quayside.stack.job_environment import settled_environment

        subprocess.Popen(
            [sys.executable, "-m", "quayside.stack.forkserver"],
            stdin=subprocess.DEVNULL,
            # the environment the worker gives each run, so the server's settings are theirs
            env={**os.environ, **settled_environment()},
            preexec_fn=preexec(),  # the parent stays this process: execv keeps the pid
        )
    options = worker_options(args)
    if options is None or os.environ.get("QUAYSIDE_WORKER_WAKE", "1") == "0":
        os.execv(sys.executable, [sys.executable, "-m", "prefect", "worker", "start", *args])
    from prefect.utilities.processutils import setup_signal_handlers_worker

    from quayside.interrupts import take_interrupts

    take_interrupts()  # Prefect turns SIGTERM into SIGINT: ignored, the worker never stopped

    # as `prefect worker start`: SIGTERM and SIGINT stop taking runs and end the worker
    setup_signal_handlers_worker(os.getpid(), "the process worker", print)
    try:
        asyncio.run(run_worker(options))
    except KeyboardInterrupt:
        print(f"Worker {options.name!r} stopped!", flush=True)


if __name__ == "__main__":
    main()
