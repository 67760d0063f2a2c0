"""The smallest gated flow: ask for approval, then return who approved (end-to-end tests of the
approval gate, and a way to try a policy from the Prefect UI)."""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from pydantic import Field

from quayside.inventory.models import ApprovalPolicy
from quayside.markdown_text import code
from quayside.tasks.approval import approval_gate


@flow(name="approval-demo", description="Wait for an approval under a policy, then finish.")
def approval_demo(
    app: str = Field("demo", description="app name (roles are checked on it)"),
    env: str = Field("prod", description="environment name"),
    version: str = Field("v0", description="what would be released"),
    requested_by: str = Field("ui", description="who asks"),
    required: int = Field(1, ge=1, le=10, description="approvals needed"),
    role: Literal["SUPER", "OWNER", "MASTER", "DEVELOPER"] = Field(
        "MASTER", description="minimum role of an approver"
    ),
    allow_self_approval: bool = False,
    timeout_hours: float = Field(24, gt=0, le=24 * 30),
    pause_s: float | None = Field(
        None,
        ge=0,
        le=24 * 3600,
        description="seconds to wait in the run's process before suspending it "
        "(default: QUAYSIDE_APPROVAL_PAUSE_S, else 600)",
    ),
) -> dict[str, str]:
    """Ask for approval of a pretend release and return the approvers.

    Args:
        app: app name.
        env: environment name.
        version: version shown to approvers.
        requested_by: the requester.
        required: approvals needed.
        role: minimum approver role.
        allow_self_approval: let the requester approve.
        timeout_hours: how long the request stays open.
        pause_s: how long to wait in the run's process before suspending it.

    Returns:
        ``{"approved_by": names}``.

    Raises:
        quayside.tasks.approval.ApprovalRejected: rejected.
        quayside.tasks.approval.ApprovalExpired: not approved in time.
    """
    policy = ApprovalPolicy(
        required=required,
        role=role,
        allow_self_approval=allow_self_approval,
        timeout_hours=timeout_hours,
    )
    summary = "\n".join(
        [
            "| host | change |",
            "| --- | --- |",
            f"| demo-1 | nothing, this is {code(version, in_table=True)} of a demo |",
        ]
    )
    approver = approval_gate(
        app=app,
        env=env,
        version=version,
        summary_markdown=summary,
        requested_by=requested_by,
        policy=policy,
        pause_s=pause_s,
    )
    get_run_logger().info("approved by %s", approver)
    return {"approved_by": approver}
