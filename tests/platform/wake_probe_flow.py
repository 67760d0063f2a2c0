"""A flow that does nothing, for tests/platform/test_worker_wake.py (its deployment runs it)."""

from prefect import flow


@flow(name="wake-probe")
def wake_probe() -> str:
    """Return a marker the test reads back from the run's result state."""
    return "woken"
