"""The one way to reach Prefect: start a run of a catalogue entry, read its state and logs,
resume it with input. The gateway, the CLI and chat all go through here."""

from quayside.runs.client import (
    RunHandle,
    RunStatus,
    api_url,
    cancel_run,
    delete_run,
    find_run_by_key,
    follow_run,
    prefect_client,
    read_run,
    resume_run,
    start_run,
    ui_url_for,
)

__all__ = [
    "RunHandle",
    "RunStatus",
    "api_url",
    "cancel_run",
    "delete_run",
    "find_run_by_key",
    "follow_run",
    "prefect_client",
    "read_run",
    "resume_run",
    "start_run",
    "ui_url_for",
]
