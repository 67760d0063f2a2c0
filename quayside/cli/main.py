"""Entry point: registers the command modules and turns errors into messages + exit codes.

Usage errors are click's (exit 2, its own message); a ``QuaysideError`` prints one line per
problem plus a hint (exit 1); anything else prints its type and message (exit 70). Tracebacks
only with ``--verbose``.

The process ends without the interpreter's teardown (:mod:`quayside.cli.process_exit`).

Before any command runs, :func:`quayside.cli.prefect_target.point_at_platform` points Prefect
at the platform of the same settings (never an ephemeral server). Nothing imported here
imports Prefect: the commands that need it import it when they run.
"""

from __future__ import annotations

import os
import sys

# httpx imports its own command line client (click, pygments, rich's progress bars and syntax
# highlighting: ~45 ms of CPU) whenever those are installed; Quayside never runs it, and
# httpx's __init__ falls back to a stub when it cannot be imported
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from quayside.cli import (  # noqa: E402
    commands_api_auth,  # noqa: F401  (registers commands)
    commands_audit,  # noqa: F401  (registers commands)
    commands_auth,  # noqa: F401  (registers commands)
    commands_config,  # noqa: F401  (registers commands)
    commands_config_publish,  # noqa: F401  (registers commands)
    commands_containers,  # noqa: F401  (registers commands)
    commands_demo,  # noqa: F401  (registers commands)
    commands_platform,  # noqa: F401  (registers commands)
    commands_release,  # noqa: F401  (registers commands)
    commands_triggers,  # noqa: F401  (registers commands)
)
from quayside.cli.app import app, fail  # noqa: E402
from quayside.cli.prefect_target import point_at_platform  # noqa: E402
from quayside.cli.process_exit import exit_now  # noqa: E402
from quayside.interrupts import take_interrupts  # noqa: E402


def run() -> object:
    """Run the command line; returns the exit code (``sys.exit``'s argument)."""
    point_at_platform(os.environ)  # before anything imports Prefect
    take_interrupts()  # Ctrl-C / SIGINT ends a follow even when started in the background
    try:
        app()
    except SystemExit as e:
        return e.code
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # the error boundary: a message, never a traceback
        return fail(e)
    return 0


def main() -> None:
    """The ``quayside`` program: run, then exit without the interpreter's slow teardown."""
    exit_now(run())


if __name__ == "__main__":
    main()
