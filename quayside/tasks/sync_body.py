"""Run a flow's synchronous body under Prefect's async flow engine.

Measured here (Prefect 3.8): a *sync* flow's engine ends by joining its heartbeat thread,
which sleeps in whole seconds, so every sync flow run takes its body rounded up to the next
second (an empty flow: 1.1 s; the same flow declared ``async``: 0.2 s). The release flows are
therefore ``async def`` flows whose body - ordinary blocking code: SSH, git, the ledger - runs
in a worker thread through :func:`run_sync_body`. Heartbeats stay on.

In that thread Prefect's dual sync/async functions (artifacts, ``suspend_flow_run``, input
reads) must run their sync variant: they decide from the run context's flow, so the body runs
under a copy of the flow run context whose flow is a sync twin of the same name. Everything
else in the context (the flow run, the task runner, the parameters) is the real one. A sync API
client context is opened for the thread, so the tasks it submits share one client.

The thread is a daemon thread of its own, not the event loop's default executor: when the run
is cancelled or SIGTERMed, the flow stops waiting for the body, and ``asyncio.run`` would
otherwise wait for the body at its end - a cancelled deploy went on through every batch, its
process alive until it had. Instead the release is stopped there
(:func:`quayside.tasks.release_crash.body_stopped`: no host switched any more, every process
the run started killed, the release recorded as the hosts serve it), and the process ends
without waiting for the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from prefect.context import FlowRunContext, SyncClientContext
from prefect.flows import Flow
from prefect.states import State

from quayside.errors import InputError
from quayside.release import stopping
from quayside.tasks.log_flush import send_logs_and_mark

T = TypeVar("T")


def _stands_for_the_body() -> None:
    """The function of every body's sync twin: never called. The twin exists only so that
    Prefect's dual functions see a sync flow; a function without parameters keeps making it
    cheap (a Flow derives a parameter schema from its function: for a release body's
    signature, about 0.2 s of CPU in each run process, measured through the fork server)."""


@functools.lru_cache(maxsize=64)
def sync_twin(name: str, version: str | None) -> Flow[Any, Any]:
    """The sync flow named ``name`` (and ``version``, as the real flow's) run contexts of
    bodies use in place of their async flow."""
    return Flow(fn=_stands_for_the_body, name=name, version=version)


async def run_sync_body(body: Callable[..., T], /, **parameters: Any) -> T:
    """Call ``body(**parameters)`` in a thread, inside the current flow run.

    Args:
        body: the flow's synchronous body (tasks submitted from it run on the flow's task
            runner; a suspension or pause raised in it ends the flow run as usual).
        parameters: passed to ``body``.

    Returns:
        What ``body`` returns.

    Raises:
        InputError: called outside a flow run.
        asyncio.CancelledError, TerminationSignal: the run was stopped while the body ran
            (the body was stopped first: see the module docstring).
    """
    context = FlowRunContext.get()
    if context is None or context.flow is None:
        raise InputError(f"{getattr(body, '__name__', body)!r} must run inside a flow run")
    twin = context.model_copy(update={"flow": sync_twin(context.flow.name, context.flow.version)})
    stopping.reset()  # a process that ran a stopped flow before (tests call flows in-process)

    def call() -> T:
        # one sync API client for the body and the tasks it submits (an async flow has only
        # an async one, and each sync task run would otherwise open its own)
        with SyncClientContext.get_or_create(), twin:
            return body(**parameters)

    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    copied = contextvars.copy_context()  # what asyncio.to_thread passes on

    def run() -> None:
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(copied.run(call))
        except BaseException as e:  # handed to the flow, which raises it
            done.set_exception(e)

    threading.Thread(target=run, name="quayside-flow-body", daemon=True).start()
    try:
        result = await asyncio.wrap_future(done)
    except BaseException as e:
        if not done.done() and context.flow_run is not None:  # stopped from outside
            from quayside.tasks.release_crash import body_stopped

            why = "cancelled" if isinstance(e, asyncio.CancelledError) else type(e).__name__
            body_stopped(context.flow_run, why)
        raise  # a failed body: Prefect logs the error after this, so nothing is marked
    if not isinstance(result, State):  # a returned state: Prefect logs how the run ended
        await send_logs_and_mark(context)  # before Prefect records the final state
    return result
