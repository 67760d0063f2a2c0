"""What an approval-gated environment does with a run nobody authenticated."""

from __future__ import annotations

import pytest

from quayside.auth.unattributed import UnattributedRunRefused, for_unattributed
from quayside.inventory.models import ApprovalPolicy
from quayside.user_names import is_name


def test_two_approvers_by_default_and_never_the_typed_name() -> None:
    got = for_unattributed(ApprovalPolicy(required=1), "ann", "web/prod")
    assert got.policy.required == 2 and not got.policy.allow_self_approval
    assert "ann" in got.requested_by and not is_name(got.requested_by)  # nobody's user name


def test_more_than_two_stays_and_one_approver_keeps_the_policy() -> None:
    assert for_unattributed(ApprovalPolicy(required=3), "x", "a/b").policy.required == 3
    one = for_unattributed(
        ApprovalPolicy(required=1, allow_self_approval=True, unattributed="one_approver"),
        "x",
        "a/b",
    )
    assert one.policy.required == 1 and not one.policy.allow_self_approval


def test_refuse_names_the_environment_and_the_way_in() -> None:
    with pytest.raises(UnattributedRunRefused, match="web/prod needs an approval") as e:
        for_unattributed(ApprovalPolicy(required=1, unattributed="refuse"), "ui", "web/prod")
    assert "quayside deploy" in (e.value.hint or "")


def test_the_inventory_refuses_an_unknown_choice() -> None:
    with pytest.raises(ValueError, match="unattributed"):
        ApprovalPolicy.model_validate({"required": 1, "unattributed": "anyone"})
