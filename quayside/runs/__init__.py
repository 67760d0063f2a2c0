"""The one way to reach Prefect: start a run of a catalogue entry, read its state and logs,
resume it with input. The gateway, the CLI and chat all go through here."""

from quayside.runs.client import (
    RunHandle,
    RunStatus,
    api_url,
    cancel_run,
    delete_run,
    find_run_by_key,
    read_run,
    resume_run,
    start_run,
    ui_url_for,
)
from quayside.runs.following import LogLine, follow_run


def __getattr__(name: str) -> object:
    """``prefect_client`` on demand: it imports Prefect (seconds), which the CLI's release
    commands never need."""
    if name == "prefect_client":
        from quayside.runs.prefect_sdk import prefect_client

        return prefect_client
    raise AttributeError(name)


__all__ = [
    "RunHandle",
    "RunStatus",
    "api_url",
    "cancel_run",
    "delete_run",
    "LogLine",
    "find_run_by_key",
    "follow_run",
    "prefect_client",
    "read_run",
    "resume_run",
    "start_run",
    "ui_url_for",
]
