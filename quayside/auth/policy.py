"""Which approval policy a run is under: the environment's, or the default when someone asks.

One rule for every path that starts a run (flows, the task API, hooks, chat, the CLI): an
environment whose policy requires approval is never skipped, whatever the caller asks; a
caller may ask for approval where the policy requires none (a ``release-*`` tag rule, the task
API's ``schedule: new``), and then gets the environment's policy or :data:`DEFAULT_POLICY`.
"""

from __future__ import annotations

from typing import Literal

from quayside.inventory.models import ApprovalPolicy, Inventory

RunKind = Literal["deploy", "rollback"]

DEFAULT_POLICY = ApprovalPolicy(required=1, role="MASTER", allow_self_approval=False)
"""The production default: one approval by a MASTER or above, not by the requester."""


def effective_policy(
    policy: ApprovalPolicy | None, *, asked: bool = False, kind: RunKind = "deploy"
) -> ApprovalPolicy | None:
    """The policy a run is approved under, or ``None`` when it runs without approval.

    Args:
        policy: the environment's policy (``None``: the inventory sets none).
        asked: the caller asks for approval even where the policy requires none.
        kind: ``rollback`` runs without approval where the policy says ``rollback: false``
            (unless ``asked``).

    >>> effective_policy(None) is None
    True
    >>> effective_policy(None, asked=True) == DEFAULT_POLICY
    True
    >>> effective_policy(ApprovalPolicy(required=2), asked=False).required
    2
    >>> effective_policy(ApprovalPolicy(required=1, rollback=False), kind="rollback") is None
    True
    """
    required = policy is not None and policy.required > 0
    if required and kind == "rollback" and policy is not None and not policy.rollback:
        required = False
    if required:
        return policy
    if asked:
        if policy is None:
            return DEFAULT_POLICY
        return policy.model_copy(update={"required": max(1, policy.required)})
    return None


def policy_for(
    inventory: Inventory,
    app: str | None,
    env: str | None,
    *,
    asked: bool = False,
    kind: RunKind = "deploy",
) -> ApprovalPolicy | None:
    """:func:`effective_policy` for ``app``/``env`` of ``inventory`` (unknown names: no
    environment policy, so only ``asked`` counts)."""
    found = inventory.apps.get(app) if app else None
    environment = found.environments.get(env) if found is not None and env else None
    return effective_policy(
        environment.approval if environment is not None else None, asked=asked, kind=kind
    )
