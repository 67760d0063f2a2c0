"""Prefect's crash and cancellation hooks for release flows: the dead run's release is
reconciled with what the hosts serve (:mod:`quayside.release.reconcile`) and its lock freed.

What Prefect 3.8.8 does (read in its source, ``prefect/runner/_flow_run_executor.py`` and
``_hook_runner.py``): when a worker's flow-run process exits non-zero without having reported
an outcome - SIGKILL, an OOM kill - the worker proposes ``Crashed`` and then runs the flow's
``on_crashed`` hooks itself, in the worker (the flow is loaded again from its entrypoint), so
these hooks run even though the run's own process is gone. ``on_cancellation`` hooks run
when a run is cancelled (in the run's process, or by the worker after it killed it). Neither
runs when the worker dies with the run (the whole platform killed): the sweep at
``quayside up`` (:mod:`quayside.stack.reconcile`) catches those.

Attach both to every release flow::

    @flow(name="git-deploy", on_crashed=[release_run_died], on_cancellation=[release_run_died])

When the hook runs inside the run's own process (a cancellation, or a SIGTERM from
``quayside up`` stopping: Prefect calls the hooks from the engine while the release body is
still running in its thread), the body could still switch a host after the hook has read
the hosts. So there the hook first stops the run (:func:`stop_own_run`): no host is switched
any more (:mod:`quayside.release.stopping`), the switches already sent are waited for, and
every process the run started (``ssh`` clients, tar producers, rsyncs) is killed; only then
are the hosts read.

A hook never raises: a reconcile that fails here (a host unreachable, the ledger down) is
logged, and the release is left for the next reconcile (the next deploy's lock take-over, or
the sweep at ``quayside up``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from quayside.errors import QuaysideError

ACTOR = "reconcile:crash-hook"
#: longest wait for the switches already sent when the run stops (a switch is one short
#: command: the go read, the symlink renamed)
SWITCH_WAIT_S = 30.0


def in_own_process(flow_run: Any) -> bool:
    """Whether this hook runs in ``flow_run``'s own process (Prefect gives a run's process
    its id in the environment; a worker running the hooks of a run it lost has another)."""
    return os.environ.get("PREFECT__FLOW_RUN_ID") == str(flow_run.id)


def stop_own_run(reason: str, logger: Any) -> None:
    """Stop the release body still running beside this hook: refuse every switch from now
    on, wait (bounded) for the switches already sent, then kill every process the run
    started, so that what the hosts serve no longer changes."""
    from quayside.executors.local_processes import kill_started
    from quayside.release import stopping

    idle = stopping.stop(reason, wait_s=SWITCH_WAIT_S)
    if not idle:
        logger.warning(
            "a host switch was still running %.0f s after the run began stopping", SWITCH_WAIT_S
        )
    # a host whose transfer is cut here reads end-of-file where its go would have been
    killed = kill_started()
    logger.info("run stopping: no host is switched any more; %d process(es) killed", killed)


def _reason(flow_run: Any, state: Any) -> str:
    message = (getattr(state, "message", None) or "").strip().splitlines()
    detail = f": {message[0][:200]}" if message else ""
    name = getattr(state, "name", None) or getattr(state, "type", "ended")
    return f"flow run {flow_run.id} is {name}{detail}"


def _logger(flow_run: Any) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect.logging.loggers import flow_run_logger

        return flow_run_logger(flow_run)
    except Exception:  # outside Prefect's logging setup
        return logging.getLogger(__name__)


def body_stopped(flow_run: Any, why: str) -> None:
    """Called in the run's own process when the flow stops waiting for its release body
    (:mod:`quayside.tasks.sync_body`: the run cancelled, or SIGTERMed by ``quayside up``
    stopping). Measured here (Prefect 3.8.8, the process work pool): a cancelled run's engine
    logs "Flow run was cancelled." and runs no hook in the process - the worker runs them
    after the process exits - while the body thread went on deploying every batch. So the
    body is stopped here (:func:`stop_own_run`), then the release is recorded as the hosts
    now serve it; the worker's hook later finds it done. Never raises."""
    logger = _logger(flow_run)
    reason = f"flow run {flow_run.id} was stopped ({why})"
    try:
        stop_own_run(reason, logger)
        for line in reconcile_dead_run(flow_run, reason):
            logger.warning("%s", line)
    except (QuaysideError, OSError) as e:
        logger.error(
            "could not reconcile the release of flow run %s (%s); the next deploy or "
            "`quayside up` will",
            flow_run.id,
            e,
        )


def reconcile_dead_run(flow_run: Any, state: Any) -> list[str]:
    """Reconcile the ``running`` releases of ``flow_run`` (its app/env parameters narrow the
    search), reading the hosts; returns one line per release interrupted. ``state``: the
    run's final state, or the reason in words.

    Raises:
        QuaysideError: the inventory or the ledger could not be read or written.
    """
    from quayside.inventory import load_inventory
    from quayside.ledger.release_queries import running_releases
    from quayside.release.reconcile import reconcile_dead
    from quayside.settings import load_settings
    from quayside.tasks.ledger import ledger_engine

    run_id = str(flow_run.id)
    reason = state if isinstance(state, str) else _reason(flow_run, state)
    parameters = dict(getattr(flow_run, "parameters", None) or {})
    app, env = parameters.get("app"), parameters.get("env")
    narrowed = isinstance(app, str) and isinstance(env, str)
    engine = ledger_engine()
    left = running_releases(engine, app=app if narrowed else None, env=env if narrowed else None)
    if not any(r.flow_run_id == run_id for r in left):
        return []  # the run finished its release itself (or never recorded one)
    inventory = load_inventory(load_settings().inventory_path)
    done = reconcile_dead(
        engine,
        inventory,
        lambda release: reason if release.flow_run_id == run_id else None,
        actor=ACTOR,
        app=app if narrowed else None,
        env=env if narrowed else None,
    )
    return [r.line for r in done]


def reconcile_left_over(
    engine: Any,
    app: str,
    env: str,
    *,
    own_run_id: str | None,
    why_dead: Callable[[str], str | None],
) -> list[str]:
    """At the start of a release, under its lock: reconcile the releases of ``app``/``env``
    that other runs left ``running`` and that ``why_dead`` says are dead (a run killed
    without hooks, or whose last ledger write failed): the ledger records what the hosts
    serve before this release changes them. Returns one line per release interrupted.

    Raises:
        QuaysideError: the inventory or the ledger could not be read or written.
    """
    from quayside.inventory import load_inventory
    from quayside.ledger.release_queries import running_releases
    from quayside.release.reconcile import reconcile_dead
    from quayside.settings import load_settings

    others = [
        r
        for r in running_releases(engine, app=app, env=env)
        if r.flow_run_id and r.flow_run_id != own_run_id
    ]
    if not others:
        return []
    reasons = {r.flow_run_id: why_dead(r.flow_run_id) for r in others if r.flow_run_id}
    if not any(reasons.values()):
        return []
    inventory = load_inventory(load_settings().inventory_path)
    done = reconcile_dead(
        engine,
        inventory,
        lambda release: reasons.get(release.flow_run_id or ""),
        actor=f"reconcile:flow-run:{own_run_id}",
        app=app,
        env=env,
    )
    return [r.line for r in done]


def release_run_died(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_crashed`` / ``on_cancellation`` hook of a release flow (see the module docstring).

    Args:
        flow: the flow (unused; Prefect passes it).
        flow_run: the run that crashed or was cancelled.
        state: its Crashed or Cancelled/Cancelling state.
    """
    logger = _logger(flow_run)
    try:
        if in_own_process(flow_run):
            stop_own_run(_reason(flow_run, state), logger)
        for line in reconcile_dead_run(flow_run, state):
            logger.warning("%s", line)
    except (QuaysideError, OSError) as e:
        logger.error(
            "could not reconcile the release of flow run %s (%s); the next deploy or "
            "`quayside up` will",
            flow_run.id,
            e,
        )
