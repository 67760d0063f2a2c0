"""Which approval policy a run is under (quayside.auth.policy): one rule for every trigger."""

from __future__ import annotations

import pytest

from quayside.auth.policy import DEFAULT_POLICY, effective_policy, policy_for
from quayside.inventory.models import ApprovalPolicy, Inventory

TWO = ApprovalPolicy(required=2, role="OWNER")
NONE_REQUIRED = ApprovalPolicy(required=0, role="DEVELOPER", allow_self_approval=True)
EXEMPT = ApprovalPolicy(required=1, rollback=False)


@pytest.mark.parametrize(
    ("policy", "asked", "kind", "expected"),
    [
        (None, False, "deploy", None),
        (None, True, "deploy", DEFAULT_POLICY),
        (TWO, False, "deploy", TWO),
        (TWO, True, "deploy", TWO),
        (TWO, False, "rollback", TWO),  # rollbacks wait too unless the policy exempts them
        (EXEMPT, False, "rollback", None),
        (EXEMPT, False, "deploy", EXEMPT),
        (EXEMPT, True, "rollback", EXEMPT),  # asked for explicitly: asked it is
        (NONE_REQUIRED, False, "deploy", None),
    ],
)
def test_effective_policy(
    policy: ApprovalPolicy | None, asked: bool, kind: str, expected: ApprovalPolicy | None
) -> None:
    assert effective_policy(policy, asked=asked, kind=kind) == expected  # type: ignore[arg-type]


def test_asking_where_none_is_required_keeps_the_environments_roles() -> None:
    """A tag rule or ``schedule: new`` asking for approval on an environment whose policy
    needs 0 approvals gets that policy's role and self-approval rule, with one approval."""
    got = effective_policy(NONE_REQUIRED, asked=True)
    assert got is not None
    assert (got.required, got.role, got.allow_self_approval) == (1, "DEVELOPER", True)


def test_a_caller_cannot_skip_a_required_approval() -> None:
    assert effective_policy(TWO, asked=False) == TWO


def test_policy_for_reads_the_inventory() -> None:
    inventory = Inventory.model_validate(
        {
            "hosts": {"h1": {"address": "127.0.0.1"}},
            "apps": {
                "web": {
                    "environments": {
                        "prod": {"hosts": ["h1"], "approval": {"required": 1, "rollback": False}},
                        "test": {"hosts": ["h1"]},
                    }
                }
            },
        }
    )
    assert policy_for(inventory, "web", "prod") is not None
    assert policy_for(inventory, "web", "prod", kind="rollback") is None
    assert policy_for(inventory, "web", "test") is None
    assert policy_for(inventory, "web", "test", asked=True) == DEFAULT_POLICY
    assert policy_for(inventory, "nope", "prod") is None  # unknown: only `asked` counts
    assert policy_for(inventory, None, None, asked=True) == DEFAULT_POLICY
