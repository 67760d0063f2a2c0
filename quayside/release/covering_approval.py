"""An approval one gate of a run gave that covers a release the same run starts: a promotion's
``promote`` gate covers the image release it runs in the target environment, so the
approvers are asked once.

Only the request's id travels, in the process (never as a flow parameter: nothing a caller
sends can name an approval); the lifecycle reads the request from the ledger and accepts it
only when :func:`why_not_covering` finds nothing: opened by this very flow run, for this app
and environment, approved, and under a policy at least as strict as the release's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quayside.auth.approvals import policy_of, valid_approvers
from quayside.auth.roles import Role
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger.models import ApprovalRequest, ApprovalStatus


@dataclass(frozen=True)
class CoveringApproval:
    """The approval request an earlier gate of this run was approved at (its ledger id and
    gate name); what it says is read from the ledger, not from here."""

    request_id: int
    gate: str


def why_not_covering(
    request: ApprovalRequest,
    *,
    run_id: str | None,
    app: str,
    env: str,
    policy: ApprovalPolicy | None,
) -> str | None:
    """Why ``request`` cannot stand for the approval of a release of ``app``/``env`` in flow
    run ``run_id`` under ``policy`` (None: the release needs none); None when it can.

    >>> from quayside.ledger.models import ApprovalDecision, Decision
    >>> r = ApprovalRequest(id=7, flow_run_id="run-1", app="shop", env="prod", gate="promote",
    ...     status=ApprovalStatus.approved, required_approvals=1, approver_role="MASTER",
    ...     allow_self_approval=False,
    ...     decisions=[ApprovalDecision(user="lead", decision=Decision.approve, valid=True)])
    >>> one = ApprovalPolicy(required=1)
    >>> why_not_covering(r, run_id="run-1", app="shop", env="prod", policy=one)
    >>> why_not_covering(r, run_id="run-2", app="shop", env="prod", policy=one)
    'approval request #7 belongs to another flow run'
    >>> why_not_covering(r, run_id="run-1", app="shop", env="prod",
    ...                  policy=ApprovalPolicy(required=2))
    'approval request #7 has 1 approval(s); this release needs 2'
    """
    name = f"approval request #{request.id}"
    if run_id is None or request.flow_run_id != run_id:
        return f"{name} belongs to another flow run"
    if (request.app, request.env) != (app, env):
        return f"{name} is for {request.app}/{request.env}, not {app}/{env}"
    if request.status is not ApprovalStatus.approved:
        return f"{name} is {request.status.value}, not approved"
    if policy is None:
        return None
    given = policy_of(request)
    approvers = len(valid_approvers(request))
    if min(approvers, given.required) < policy.required:
        return f"{name} has {approvers} approval(s); this release needs {policy.required}"
    if Role.parse(given.role) < Role.parse(policy.role):
        return f"{name} was open to {given.role}; this release needs {policy.role}"
    if given.allow_self_approval and not policy.allow_self_approval:
        return f"{name} allowed self-approval; this release does not"
    return None


def covering_details(request: ApprovalRequest) -> dict[str, Any]:
    """What the release records of the approval that covered it (``details["approval"]``)."""
    return {
        "request": request.id,
        "gate": request.gate,
        "approvers": list(valid_approvers(request)),
        "for_release": request.release_id,
    }
