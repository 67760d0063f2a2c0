"""A process started with SIGINT ignored (a shell's background job) gets Ctrl-C back: the
CLI (here) and the worker (tests/platform/test_worker_wake.py stops one) take interrupts."""

from __future__ import annotations

import signal
import subprocess
import sys

from quayside.project_root import PROJECT_DIR

PROGRAM = (
    "import os, signal, time\n"
    "from quayside.interrupts import take_interrupts\n"
    "print(take_interrupts(), flush=True)\n"
    "try:\n"
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "    time.sleep(5)\n"
    "    print('still running', flush=True)\n"
    "except KeyboardInterrupt:\n"
    "    print('interrupted', flush=True)\n"
)


def _ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _printed(program: str, *, sigint_ignored: bool) -> list[str]:
    """What ``program`` prints, run as a new process (started with SIGINT ignored, as a
    shell's background job is, or with Python's usual handler)."""
    done = subprocess.run(
        [sys.executable, "-c", program],
        preexec_fn=_ignoring_sigint if sigint_ignored else None,
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_a_process_started_with_sigint_ignored_is_interrupted_again() -> None:
    assert _printed(PROGRAM, sigint_ignored=True) == ["True", "interrupted"]


def test_a_process_with_the_usual_handler_is_left_as_it_is() -> None:
    assert _printed(PROGRAM, sigint_ignored=False) == ["False", "interrupted"]


def test_the_cli_started_with_sigint_ignored_ends_on_ctrl_c_with_130() -> None:
    program = (
        "import os, signal, time\n"
        "from quayside.cli import main\n"
        "def command():\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the command runs\n"
        "    time.sleep(5)\n"
        "main.app = command\n"
        "print(main.run(), flush=True)\n"
    )
    assert _printed(program, sigint_ignored=True) == ["130"]
