"""The approval step of a release run (:meth:`ReleaseLifecycle.approve
<quayside.tasks.release_lifecycle.ReleaseLifecycle.approve>`): the environment's policy for
who asked, an earlier gate's approval that covers this release, the versions' editors kept
from approving, and the gate itself (:func:`quayside.tasks.approval.approval_gate`) on the
release row the run recorded before a suspension."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from prefect.logging.loggers import get_run_logger
from sqlalchemy import Engine

from quayside.auth.approvals import DEFAULT_GATE, valid_approvers
from quayside.auth.policy import effective_policy
from quayside.auth.unattributed import for_unattributed
from quayside.errors import NotFoundError
from quayside.inventory.models import ApprovalPolicy
from quayside.inventory.resolve import Target
from quayside.ledger.approvals import get_request as get_approval_request
from quayside.ledger.models import Release, ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.ledger.submissions import submission_of_run
from quayside.release.covering_approval import (
    CoveringApproval,
    covering_details,
    why_not_covering,
)
from quayside.tasks.release_finish import finish_quietly

if TYPE_CHECKING:
    from quayside.tasks.release_lifecycle import ReleaseRequest

EDITOR_RULE = (
    "whoever edited a version may not approve its publish (approval.allow_editor_approval: false)"
)


def excluded_editors(policy: ApprovalPolicy, editors: Mapping[str, str] | None) -> dict[str, str]:
    """The approvers ``policy`` excludes for having edited what is released, user -> why
    (naming the rule); none where the policy allows editors to approve.

    >>> strict = ApprovalPolicy(allow_editor_approval=False)
    >>> excluded_editors(strict, {"bo": "hosts v2"})["bo"].startswith("bo edited hosts v2, and")
    True
    >>> excluded_editors(ApprovalPolicy(), {"bo": "hosts v2"})
    {}
    """
    if policy.allow_editor_approval or not editors:
        return {}
    return {user: f"{user} edited {what}, and {EDITOR_RULE}" for user, what in editors.items()}


class ApproveStep:
    """:meth:`approve` and what it reads: a part of
    :class:`~quayside.tasks.release_lifecycle.ReleaseLifecycle`, which sets the attributes
    below."""

    request: ReleaseRequest
    target: Target | None
    engine: Engine
    run_id: str | None
    row: int | None
    finished: bool
    step: str | None
    _suspended: bool

    if TYPE_CHECKING:

        def record(self, **more: Any) -> int: ...

    def waiting_release(self) -> Release | None:
        """The release this flow run recorded before an approval suspended it, if any."""
        if self.run_id is None:
            return None
        r = self.request
        for row in list_releases(
            self.engine, r.app, r.env, limit=50, status=ReleaseStatus.awaiting_approval
        ):
            if row.flow_run_id == self.run_id:
                return row
        return None

    def approve(
        self,
        summary_markdown: str | Callable[[], str],
        *,
        asked: bool = False,
        policy_kind: Literal["deploy", "rollback"] = "deploy",
        editors: Mapping[str, str] | None = None,
        gate: str = DEFAULT_GATE,
        covered_by: CoveringApproval | None = None,
    ) -> str | None:
        """The approval gate, where the environment's policy requires one or ``asked``.

        Args:
            summary_markdown: the plan shown to approvers (or a function making it, called
                only when an approval is needed).
            asked: the caller asked for an approval the policy does not require.
            policy_kind: ``rollback`` where the policy may exempt rollbacks.
            editors: who edited what this release publishes, user -> what they edited
                (``hosts up to v3``); under ``allow_editor_approval: false`` none of them may
                approve it (the gate refuses and records their answers).
            gate: which gate of the run this is (a run that asks twice, such as a canary
                publish, names its later gates: each has its own approval request).
            covered_by: an approval an earlier gate of this run gave for what this release
                does (a promotion's image release): read from the ledger and, where it
                belongs to this run and app/env, is approved and meets the policy, it stands
                for this gate (recorded as ``details["approval"]``, nobody asked again);
                otherwise the gate asks as usual.

        Returns:
            Who approved, or None when no approval was needed.

        Raises:
            quayside.tasks.approval.ApprovalRejected: refused (the release ends cancelled).
            quayside.tasks.approval.ApprovalExpired: not answered in time (cancelled too).
            quayside.tasks.approval.ApprovalInterrupted: the run stopped waiting (cancelled,
                with why). Any other error (the ledger, Prefect's API) is not an answer: the
                ``with`` block records the release ``failed`` with its message.
        """
        if self.target is None:
            return None
        policy = effective_policy(self.target.env.approval, asked=asked, kind=policy_kind)
        if policy is not None:
            policy = self._policy_for_who_asked(policy)
        if covered_by is not None:
            covering = self._covering(covered_by, policy)
            if covering is not None:
                return covering
        if policy is None:
            return None
        from quayside.tasks.approval import (
            ApprovalExpired,
            ApprovalInterrupted,
            ApprovalRejected,
            approval_gate,
            suspending,
        )

        waiting = self.waiting_release()
        if waiting is not None:  # resumed: Prefect ran the flow again from the top
            self.row = int(waiting.id)
        else:
            self.record(status=ReleaseStatus.awaiting_approval)
        self.step = "approval"
        try:
            approver = approval_gate(
                app=self.request.app,
                env=self.request.env,
                version=self.request.label,
                summary_markdown=summary_markdown
                if isinstance(summary_markdown, str)
                else summary_markdown(),
                requested_by=self.request.requested_by,
                policy=policy,
                release_id=self.row,
                excluded_approvers=excluded_editors(policy, editors),
                gate=gate,
            )
        except (ApprovalRejected, ApprovalExpired):
            # the gate has told the channels; the release only ends
            finish_quietly(self.engine, self.row, ReleaseStatus.cancelled, "not approved")
            self.finished = True
            raise
        except ApprovalInterrupted as e:  # the run was stopped while it waited: no answer
            finish_quietly(self.engine, self.row, ReleaseStatus.cancelled, str(e))
            self.finished = True
            raise
        except BaseException as e:
            # suspended: left as recorded; any other error (the ledger, the API) is no
            # answer from an approver: the with block records it as failed, with its message
            self._suspended = suspending(e)
            raise
        self.step = None
        get_run_logger().info("approved by %s", approver)
        return approver

    def _covering(self, covered_by: CoveringApproval, policy: ApprovalPolicy | None) -> str | None:
        """The approvers of ``covered_by`` where it stands for this release's gate (recorded
        on the release), else None (logged: the gate asks)."""
        r = self.request
        try:
            request = get_approval_request(self.engine, covered_by.request_id)
        except NotFoundError as e:
            get_run_logger().warning("%s: this release asks at its own gate", e)
            return None
        why = why_not_covering(request, run_id=self.run_id, app=r.app, env=r.env, policy=policy)
        if why is not None:
            get_run_logger().warning("%s: this release asks at its own gate", why)
            return None
        self.request = replace(r, details={**r.details, "approval": covering_details(request)})
        approvers = ", ".join(valid_approvers(request)) or "(approved)"
        get_run_logger().info(
            "approved by %s at gate %s of this run (approval request #%s)",
            approvers,
            request.gate,
            request.id,
        )
        return approvers

    def _policy_for_who_asked(self, policy: ApprovalPolicy) -> ApprovalPolicy:
        """``policy``, or what the environment says for a run nobody authenticated (started
        from the Prefect UI or API: no submission recorded) - recorded as such, so the
        self-approval rule never compares an approver with a typed name.

        Raises:
            quayside.auth.unattributed.UnattributedRunRefused: the policy refuses such runs.
        """
        if self.run_id is None or submission_of_run(self.engine, self.run_id) is not None:
            return policy
        r = self.request
        unattributed = for_unattributed(policy, r.requested_by, f"{r.app}/{r.env}")
        self.request = replace(
            r,
            requested_by=unattributed.requested_by,
            details={**r.details, "unattributed": policy.unattributed},
        )
        get_run_logger().warning(
            "nobody authenticated this run (requested_by %r was typed): %s",
            r.requested_by,
            "two approvers needed"
            if policy.unattributed == "two_approvers"
            else "approved as any run (approval.unattributed: one_approver)",
        )
        return unattributed.policy
