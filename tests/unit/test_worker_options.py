"""quayside.stack.worker runs Prefect's process worker itself only for the options it knows,
and the early-start wake only reacts to runs of its own pool."""

from __future__ import annotations

from prefect.events.schemas.events import Event, RelatedResource, Resource

from quayside.stack.worker import worker_options
from quayside.stack.worker_wake import SCHEDULED_EVENT, for_pool


def test_the_platform_s_options_are_run_here() -> None:
    options = worker_options(
        ["--pool", "quayside", "--type", "process", "--name", "w1", "--limit", "5", "-q", "a"]
    )
    assert options is not None
    assert (options.pool, options.name, options.limit, options.work_queues) == (
        "quayside",
        "w1",
        5,
        ["a"],
    )


def test_anything_else_goes_to_prefect_s_own_command() -> None:
    assert worker_options(["--pool", "quayside", "--type", "docker"]) is None
    assert worker_options(["--pool", "quayside", "--run-once"]) is None
    assert worker_options(["--type", "process"]) is None
    assert worker_options(["--pool", "quayside", "--limit", "many"]) is None


def _event(pool: str) -> Event:
    return Event(
        event=SCHEDULED_EVENT,
        resource=Resource({"prefect.resource.id": "prefect.flow-run.1"}),
        related=[
            RelatedResource(
                {
                    "prefect.resource.id": "prefect.work-pool.2",
                    "prefect.resource.role": "work-pool",
                    "prefect.resource.name": pool,
                }
            )
        ],
    )


def test_only_runs_of_the_worker_s_pool_wake_it() -> None:
    assert for_pool(_event("quayside"), "quayside")
    assert not for_pool(_event("other"), "quayside")
