"""The keys of an approval gate's waits: ``approval-<request id>-<attempt>``.

Prefect records each on the flow run (``empirical_policy.pause_keys``) and on its paused state
(``state_details.pause_key``); the gate numbers its waits by them, and the approval sweep
(:mod:`quayside.runs.approval_sweep`) tells by them which request a suspended run waits on.
"""

from __future__ import annotations

KEY_PREFIX = "approval"


def pause_key_prefix(request_id: int) -> str:
    """What every wait key on approval request ``request_id`` starts with."""
    return f"{KEY_PREFIX}-{request_id}-"


def pause_key(request_id: int, attempt: int) -> str:
    """The pause key of the ``attempt``-th wait on approval request ``request_id`` (the form's
    answer to it is the flow run input ``<paused|suspended>-<key>-response``)."""
    return f"{pause_key_prefix(request_id)}{attempt}"
