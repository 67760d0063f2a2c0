"""Ending the CLI process without the interpreter's teardown.

When a command is done, CPython's finalization frees every module and object it loaded:
for a command that imported Prefect, SQLAlchemy and pydantic that took 0.3 to 1.9 s on a busy
2-core machine, after the command's last line was printed (``quayside deploy`` returned that
much later than its run ended). :func:`exit_now` does what a normal exit does first -- waits
for the threads that are still working and runs threading's and :mod:`atexit`'s exit
callbacks (Prefect's background services send their queued logs and events there) -- then
flushes stdout and stderr and ends the process with ``os._exit``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_status(code: object) -> int:
    """The process status ``sys.exit(code)`` gives (a message is printed by the caller)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def exit_now(code: object) -> NoReturn:
    """Exit as ``sys.exit(code)`` would, without the interpreter's teardown."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
    status = exit_status(code)
    # what Py_Finalize runs first: join non-daemon threads, then threading's exit callbacks
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:  # another interpreter: the ordinary way
        sys.exit(status)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or terminal: nothing more to write
            pass
    os._exit(status)
