"""Run the reconciling sweep (:mod:`quayside.stack.reconcile_sweep`) beside a healthy
platform without slowing ``quayside up`` down or ever failing it: a child process with the
platform's environment, its lines told to the operator as they come, its output kept in
``logs/reconcile.log``, ended after a bounded time or when ``up`` stops."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from quayside.stack.parent_death import preexec

SWEEP_TIMEOUT_S = 180.0
"""The sweep is ended after this long (a host that does not answer keeps it waiting)."""


class BackgroundSweep:
    """The sweep's child process and the thread that relays its lines."""

    def __init__(self, process: subprocess.Popen[str], thread: threading.Thread) -> None:
        self.process = process
        self.thread = thread

    def stop(self) -> None:
        """End the sweep if it still runs (``up`` is stopping)."""
        if self.process.poll() is None:
            self.process.kill()
        self.thread.join(5)


def start_sweep(
    env: Mapping[str, str],
    project_dir: Path,
    log_file: Path,
    started_at: datetime,
    say: Callable[[str], None],
    *,
    timeout_s: float = SWEEP_TIMEOUT_S,
) -> BackgroundSweep | None:
    """Start the sweep; None (and one line said) if it cannot even start."""
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "quayside.stack.reconcile_sweep", started_at.isoformat()],
            env=dict(env),
            cwd=project_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=preexec(),
        )
    except OSError as e:
        say(f"reconcile       not started: {e}")
        return None
    timed_out = threading.Event()

    def end() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout_s, end)
    timer.daemon = True
    timer.start()

    def relay() -> None:
        assert process.stdout is not None
        try:
            with log_file.open("a") as log:
                for line in process.stdout:
                    log.write(line)
                    log.flush()
                    if line.startswith(("release ", "reconcile skipped")):
                        say(f"reconcile       {line.rstrip()}")
        except OSError:
            pass
        finally:
            timer.cancel()
            process.wait()
            if timed_out.is_set():
                say(f"reconcile       ended after {timeout_s:.0f}s; see {log_file}")

    thread = threading.Thread(target=relay, name="quayside-reconcile", daemon=True)
    thread.start()
    return BackgroundSweep(process, thread)
