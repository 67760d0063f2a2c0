"""A release run that is stopping switches no host any more.

Prefect 3.8 runs a cancelled or SIGTERMed run's ``on_cancellation`` / ``on_crashed`` hooks
inside the run's own process (``flow_engine`` ``set_state`` -> ``call_hooks``), while the
release body keeps running in its thread (:mod:`quayside.tasks.sync_body`) until the process
exits after the hook. The hook reads what the hosts serve and records it
(:mod:`quayside.tasks.release_crash`); a host that switched after that read would leave the
ledger wrong with nothing to reconcile it again.

So every command that can switch a host - a stage's go, the switch after the pre-switch
hooks, a switch back, a rollback's switch, a config or upstream swap and its restore - goes
through :func:`switching`, and the hook calls :func:`stop` first: from then on
:func:`switching` refuses (:class:`RunStopping`), and :func:`stop` waits, bounded, for the
switching commands already sent to end, so what the hook reads afterwards no longer changes.

One flag per process: a flow run is one process (the fork server forks one per run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from quayside.errors import HostError


class RunStopping(HostError):
    """The run is being cancelled or has crashed: no host is switched any more."""


_cond = threading.Condition()
_reason: str | None = None
_switching = 0


def stop(reason: str, wait_s: float = 30.0) -> bool:
    """Refuse every switch from now on, then wait up to ``wait_s`` for the switching
    commands in flight to end.

    Returns:
        True when none is in flight any more (False: some still were after ``wait_s``).
    """
    global _reason
    deadline = time.monotonic() + wait_s
    with _cond:
        if _reason is None:
            _reason = reason
        while _switching > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _cond.wait(left)
    return True


def stopping() -> str | None:
    """Why this process's run is stopping, or None while it may switch hosts."""
    return _reason


def begin_switch() -> bool:
    """Count one switching command in flight, unless the run is stopping (then False and
    nothing counted). Pair with :func:`end_switch`; :func:`switching` does both."""
    global _switching
    with _cond:
        if _reason is not None:
            return False
        _switching += 1
        return True


def end_switch() -> None:
    """One switching command counted by :func:`begin_switch` has ended."""
    global _switching
    with _cond:
        _switching -= 1
        _cond.notify_all()


def refusal(host: str, what: str) -> RunStopping:
    """The error a refused switch raises: names the host and why."""
    return RunStopping(
        host,
        f"{what} not sent: the run is stopping ({_reason}); the host keeps what it served, "
        "recorded when the run's release is reconciled",
    )


@contextmanager
def switching(host: str, what: str) -> Iterator[None]:
    """Around a command that may switch ``host``: refused once the run is stopping, and
    waited for by :func:`stop` while it runs.

    Raises:
        RunStopping: the run is stopping; nothing was sent.
    """
    if not begin_switch():
        raise refusal(host, what)
    try:
        yield
    finally:
        end_switch()


def reset() -> None:
    """Forget a stop (tests; a process that runs several flows in turn)."""
    global _reason
    with _cond:
        _reason = None
