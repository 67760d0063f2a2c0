"""What happens to a run nobody authenticated in an approval-gated environment.

A run submitted through a trigger (the CLI with a token, the gateway, chat) carries its
submitter, checked when it starts. A run started from the Prefect UI or API has only the
``requested_by`` someone typed: the self-approval rule must not compare approvers with it.
The environment's policy says what happens instead (``approval.unattributed`` in the
inventory): ``two_approvers`` (the default), ``refuse``, or ``one_approver``.
"""

from __future__ import annotations

from dataclasses import dataclass

from quayside.errors import QuaysideError
from quayside.inventory.models import ApprovalPolicy


class UnattributedRunRefused(QuaysideError):
    """An approval-gated environment refuses runs nobody authenticated."""

    hint = (
        "start it with a token: `quayside deploy` with QUAYSIDE_TOKEN set, the gateway's "
        "/api/tasks, a hook or chat"
    )


@dataclass(frozen=True)
class Unattributed:
    """The policy an unattributed run is approved under, and the name it is recorded as."""

    policy: ApprovalPolicy
    requested_by: str


def unattributed_name(typed: str) -> str:
    """The requester an unattributed run is recorded under: the typed name, marked, and never
    a user name (names have no spaces or parentheses), so no approver is ever "the requester".

    >>> unattributed_name("ann")
    'unattributed (typed: ann)'
    """
    return f"unattributed (typed: {typed[:60]})"


def for_unattributed(policy: ApprovalPolicy, typed: str, where: str) -> Unattributed:
    """The approval of a run with no authenticated requester under ``policy``.

    Args:
        policy: the effective policy of the run (an approval is required).
        typed: the ``requested_by`` the run was started with.
        where: ``app/env``, named in a refusal.

    Raises:
        UnattributedRunRefused: the policy says ``refuse``.
    """
    if policy.unattributed == "refuse":
        raise UnattributedRunRefused(
            f"{where} needs an approval and refuses runs nobody authenticated "
            f"(requested_by {typed!r} was typed, not signed in)"
        )
    required = policy.required if policy.unattributed == "one_approver" else 2
    return Unattributed(
        policy.model_copy(
            update={"required": max(1, policy.required, required), "allow_self_approval": False}
        ),
        unattributed_name(typed),
    )
