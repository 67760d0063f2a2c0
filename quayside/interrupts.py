"""Ctrl-C (SIGINT) for processes started with it ignored.

A shell starts its background jobs (``make up &``, ``nohup ... &`` from a script) with SIGINT
and SIGQUIT ignored, and Python then leaves SIGINT ignored instead of raising
``KeyboardInterrupt``. Prefect's worker stops on SIGTERM by sending itself SIGINT, so such a
worker never stopped (seen: `quayside up`'s worker, and `quayside logs --follow` ignoring
Ctrl-C, in a test run started in the background). :func:`take_interrupts` gives SIGINT its
usual meaning back in the processes that rely on it.
"""

from __future__ import annotations

import signal
import threading


def take_interrupts() -> bool:
    """Raise ``KeyboardInterrupt`` on SIGINT if this process was started with SIGINT ignored;
    True if it was (only the main thread can set handlers: elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return True
