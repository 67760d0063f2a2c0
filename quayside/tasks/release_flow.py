"""The Prefect flow decorator every release flow uses: a run killed (SIGKILL, OOM) or
cancelled has its release reconciled with what the hosts serve and its lock freed
(:func:`~quayside.tasks.release_crash.release_run_died`), and its host work runs in threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Flow
from prefect.task_runners import ThreadPoolTaskRunner

from quayside.tasks.release_crash import release_run_died

P = ParamSpec("P")
R = TypeVar("R")

#: threads for a release run's tasks (one task per batch, the hosts in its own threads)
RELEASE_TASK_WORKERS = 50


def release_flow(
    name: str, description: str, *, max_workers: int | None = RELEASE_TASK_WORKERS
) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """``@flow`` for a release flow named ``name`` (its deployments and the UI use the name).

    Args:
        name: the flow's Prefect name.
        description: what the UI shows.
        max_workers: threads of its task runner (None: Prefect's default runner).
    """
    runner: ThreadPoolTaskRunner[Any] | None = (
        ThreadPoolTaskRunner(max_workers=max_workers) if max_workers is not None else None
    )

    def decorate(fn: Callable[P, R]) -> Flow[P, R]:
        return Flow(
            fn,
            name=name,
            description=description,
            on_crashed=[release_run_died],
            on_cancellation=[release_run_died],
            task_runner=runner,  # type: ignore[arg-type]
        )

    return decorate
