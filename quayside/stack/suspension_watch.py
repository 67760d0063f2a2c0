"""Prefect's watch for a flow run being suspended from outside, kept off a release's path.

Prefect 3.8's flow engine, for every run of a deployment, opens an events subscription that
notices the run being suspended from the UI or the API
(``prefect._flow_run_suspension.observe_flow_run_suspension``). It blocks the run's start
until that subscription is connected and the run read once, and at the run's end it waits for
the watching thread to notice it should stop (it looks every 0.2 s) - after the final state,
so the run's process, and the shipping of its last log lines, end that much later. Measured
on a git deploy through the fork server (py-spy, wall time): about 0.1 s before Running.

:func:`install` (called in each fork-server run process) makes the engine use
:func:`observe_in_background`: the same Prefect watch, entered and left in a thread of its
own, so neither the start nor the end of the run waits for it. What it does is unchanged: a
suspension requested while the run works is still noticed (a request made before the
subscription is connected is found by the watch's first read of the run) and the run is
suspended at its next task boundary, as Prefect does.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

#: how the engine module names the watch it enters (``from ... import`` binds it there)
ENGINE_ATTRIBUTE = "observe_flow_run_suspension"


def observe_in_background(*args: Any, **kwargs: Any) -> AbstractContextManager[None]:
    """Prefect's suspension watch (called with the engine's arguments, whatever they are) in
    a daemon thread: returns at once and leaves without waiting (the thread leaves Prefect's
    watch when told to)."""
    from prefect._flow_run_suspension import observe_flow_run_suspension

    return _in_thread(lambda: observe_flow_run_suspension(*args, **kwargs))


@contextmanager
def _in_thread(enter: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
    stop = threading.Event()
    context = contextvars.copy_context()  # the engine's run context, as Prefect's watch gets

    def watch() -> None:
        try:
            with enter():
                stop.wait()
        except Exception:  # noqa: BLE001 - Prefect's own watch logs and degrades the same way
            return

    threading.Thread(
        target=context.run, args=(watch,), name="quayside-suspension-watch", daemon=True
    ).start()
    try:
        yield
    finally:
        stop.set()


def install() -> bool:
    """Make Prefect's flow engine (in this process) use :func:`observe_in_background`;
    False if this Prefect has no such engine or watch (then nothing is changed)."""
    try:
        import prefect.flow_engine as engine
    except ImportError:
        return False
    if not callable(getattr(engine, ENGINE_ATTRIBUTE, None)):
        return False
    setattr(engine, ENGINE_ATTRIBUTE, observe_in_background)
    return True
