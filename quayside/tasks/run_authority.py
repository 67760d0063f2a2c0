"""The start-of-run authority check every release flow makes (see quayside.auth.run_start)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect.runtime import flow_run

from quayside.auth.run_start import confirm_submitter
from quayside.inventory import Inventory
from quayside.tasks.ledger import current_flow_run_id, ledger_engine


def confirm_run_authority(
    inventory: Inventory, params: Mapping[str, Any], requested_by: str
) -> str:
    """Refuse to go on if this run's submitter may no longer start it; call it first thing in
    a flow, before anything is recorded or touched (it runs again on every resume, so a role
    revoked while the run waited for approval stops it too).

    Args:
        inventory: the inventory the flow loaded.
        params: the parameters that say what the run acts on (app, env, hosts or group).
        requested_by: the ``requested_by`` parameter.

    Returns:
        Who the run is recorded as requested by: the authenticated submitter when the run was
        submitted through a trigger (a parameter cannot name someone else), else
        ``requested_by``.

    Raises:
        quayside.auth.run_start.RunNotAuthorized: the submitter lost the right.
    """
    run_id = current_flow_run_id()
    if run_id is None:
        return requested_by
    tags = flow_run.get_tags()  # a run created for a submission that is missing is refused
    principal = confirm_submitter(ledger_engine(), inventory, run_id, params, tags)
    return principal if principal is not None else requested_by
