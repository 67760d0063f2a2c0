"""One release run, from the approval to the finish: the lifecycle every release flow shares.

A release flow resolves its target and plans, then hands the rest to :class:`ReleaseLifecycle`:

1. :meth:`~ReleaseLifecycle.approve` - the approval gate where the environment's policy (or
   the caller) asks for one, with the plan as its description; the release is recorded
   ``awaiting_approval`` and the same row is used again when Prefect resumes a suspended run
   from the top. Refused or expired: the release ends ``cancelled``.
2. :meth:`~ReleaseLifecycle.lock` - the app/env deploy lock (a ledger lease, after the
   approval: a pending approval holds nothing); a refusal is recorded as "not run" and the run
   ends ``Cancelled``.
3. :meth:`~ReleaseLifecycle.start` - the release recorded (if not yet) and ``running``.
4. :meth:`~ReleaseLifecycle.apply` - the hosts in batches, one task run per batch, each
   batch's host rows in one transaction; no new batch past the failure threshold.
5. :meth:`~ReleaseLifecycle.restore` - every host that switched goes back, all at once,
   before anything slow (artifact storage, notifications) happens.
6. :meth:`~ReleaseLifecycle.finish` - the ledger release with its outcome, then the
   notification (succeeded / failed / rolled back, with the link to the run). Leaving the
   ``with`` block on an error finishes the release ``failed`` (announced) if the flow did not;
   a suspension for approval and a refusal leave it as they recorded it.

Example (a whole release flow body, see docs/architecture.md)::

    with ReleaseLifecycle(request, target) as life:
        life.approve(plan_markdown, asked=approval)
        life.lock()
        life.start()
        applied = life.apply(target.host_names, on_host, action="stamp")
        life.finish_applied(applied, headline=f"{len(applied.reports)} host(s) stamped")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal

from prefect.logging.loggers import get_run_logger
from prefect.runtime import flow_run

from quayside.auth.approvals import DEFAULT_GATE, valid_approvers
from quayside.auth.policy import effective_policy
from quayside.auth.unattributed import for_unattributed
from quayside.deploy.errors import ThresholdExceeded
from quayside.deploy.policy import exceeded
from quayside.errors import LedgerError, NotFoundError
from quayside.fanout import batches
from quayside.inventory.models import ApprovalPolicy
from quayside.inventory.resolve import Target
from quayside.ledger.approvals import get_request as get_approval_request
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import HostStatus, Release, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.ledger.releases import HostOutcome, mark_running, record_host_outcomes, start_release
from quayside.ledger.submissions import submission_of_run
from quayside.release.covering_approval import (
    CoveringApproval,
    covering_details,
    why_not_covering,
)
from quayside.release.host_outcomes import failed_rows, host_outcomes, outcome_text
from quayside.release.host_report import HostReport
from quayside.release.ledger_behind import LedgerBehindHosts
from quayside.tasks.fanout import fan_out
from quayside.tasks.ledger import current_flow_run_id, ledger_engine
from quayside.tasks.release_finish import Announcement, finish_quietly, finish_release_run
from quayside.tasks.release_lock import NotRun, take_release_lock
from quayside.tasks.release_report import reports_of


@dataclass(frozen=True)
class ReleaseRequest:
    """What one release run releases, as the ledger records it.

    Attributes:
        app: app name (``hello`` for host-group runs).
        env: environment name (the group for host-group runs).
        kind: the ledger's release kind.
        version: the version recorded in the ledger.
        requested_by: who asked (already confirmed by ``confirm_run_authority``).
        shown: what approvers, lock holders and notifications read (default ``version``).
        fields: more ledger columns (``ref``, ``commit_sha``, ``artifact_location``,
            ``manifest_digest``, ``rollback_of_id``).
        details: the release's ``details`` JSON.
        lock_wait_s: 0 refuses at once when another run holds the lock; else wait so long.
        announce: False: no notification (a kind without channels, e.g. hello-release
            without an app ``hello``).
    """

    app: str
    env: str
    kind: ReleaseKind
    version: str | None
    requested_by: str
    shown: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    lock_wait_s: float = 0
    announce: bool = True

    @property
    def label(self) -> str:
        return self.shown or self.version or ""


@dataclass
class Applied:
    """What :meth:`ReleaseLifecycle.apply` did: one report per host started (in order), the
    hosts never started, how many failed and whether the threshold stopped it."""

    reports: list[HostReport]
    skipped: list[str]
    failed: int
    limit: int
    stopped: bool
    #: the ledger refused a batch's host rows while the threshold stopped the release: the
    #: hosts are switched back first (:meth:`ReleaseLifecycle.restore` records them then)
    ledger_behind: LedgerBehindHosts | None = None
    #: the hosts of the batch whose rows the ledger refused
    unrecorded: tuple[str, ...] = ()

    @property
    def bad(self) -> list[HostReport]:
        return [r for r in self.reports if not r.ok]

    @property
    def changed(self) -> list[HostReport]:
        return [r for r in self.reports if r.status == "succeeded"]


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


class ReleaseLifecycle:
    """One release run: approval, lock, apply in batches, restore, finish (see the module).

    Use it as a context manager around everything after resolving and planning; the lock is
    released when the block ends.
    """

    def __init__(self, request: ReleaseRequest, target: Target | None = None) -> None:
        self.request = request
        self.target = target
        self.engine = ledger_engine()
        self.run_id = current_flow_run_id()
        self.row: int | None = None
        self.finished = False
        self.step: str | None = None
        """The step under way; a failure's message starts with it (``build: ...``)."""
        self._stack = ExitStack()
        self._locked = False
        self._suspended = False
        self._applying = False
        """True from the first host change on (apply, restore)."""
        self._reports: list[HostReport] = []
        """What each host worked on so far did (what it serves, if the ledger cannot say)."""

    # -- the with block -------------------------------------------------------------------

    def __enter__(self) -> ReleaseLifecycle:
        self._stack.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            if error is not None and not self._suspended and not isinstance(error, NotRun):
                self._finish_failed(error)
        finally:
            self._stack.__exit__(kind, error, tb)  # the lock goes last
        return None

    def _finish_failed(self, error: BaseException) -> None:
        if self.finished:
            return
        if self.row is None and not self._locked:
            return  # refused before anything was recorded (bad input, no approval row)
        if isinstance(error, LedgerError) and self._applying:
            # the ledger stayed busy past its retries while hosts were switching: writing
            # "failed" now (if it frees up) would contradict hosts that serve the release.
            # Left running, the next release's lock (or the sweep at `quayside up`) reads
            # what the hosts serve and records that (quayside.release.reconcile).
            behind = self._behind(error)
            get_run_logger().error("%s; %s", behind, behind.hint)
            return
        why = (str(error) or type(error).__name__).splitlines()[0]
        if self.step:
            why = f"{self.step}: {why}"
        if self.row is None:
            self.record(details={"step": self.step or "start"})
        finish_quietly(self.engine, self.row, ReleaseStatus.failed, why, self.announcement(
            "failed", why
        ))  # fmt: skip
        self.finished = True

    # -- the steps ------------------------------------------------------------------------

    def record(self, **more: Any) -> int:
        """This run's ledger release, created on first use (one per run).

        Args:
            more: ledger columns for the row if it is created now (``status``, ``details``
                merged over the request's, any of the request's ``fields``).
        """
        if self.row is not None:
            return self.row
        r = self.request
        details = {**r.details, **more.pop("details", {})}
        row = start_release(
            self.engine,
            r.app,
            r.env,
            r.kind,
            requested_by=r.requested_by,
            version=r.version,
            flow_run_id=self.run_id,
            details=details,
            **{**r.fields, **more},
        )
        self.row = int(row.id)
        return self.row

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
        from quayside.tasks.approval import approval_gate, suspending

        waiting = self.waiting_release()
        if waiting is not None:  # resumed: Prefect ran the flow again from the top
            self.row = int(waiting.id)
        else:
            self.record(status=ReleaseStatus.awaiting_approval)
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
        except BaseException as e:
            if suspending(e) or not isinstance(e, Exception):
                self._suspended = suspending(e)
                raise
            # the gate has told the channels; the release only ends
            finish_quietly(self.engine, self.row, ReleaseStatus.cancelled, "not approved")
            self.finished = True
            raise
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

    def recorded_details(self) -> dict[str, Any]:
        """The details of the release this run recorded (after a resume: what it recorded
        before suspending, e.g. the release directory name to keep using)."""
        if self.row is None:
            return {}
        from quayside.ledger.release_queries import get_release

        return dict(get_release(self.engine, self.row).details or {})

    def lock(self) -> None:
        """Hold the app/env deploy lock until the block ends.

        Raises:
            quayside.tasks.release_lock.NotRun: another run holds it; the refusal is recorded.
        """
        r = self.request
        holder = f"{r.requested_by} (flow run {flow_run.get_name() or 'local'})"
        self.step = "lock"
        take_release_lock(
            self._stack,
            self.engine,
            r.app,
            r.env,
            holder=holder,
            flow_run_id=self.run_id,
            version=r.label,
            wait_s=r.lock_wait_s,
            record=lambda: self.record(details={"step": "lock"}),
        )
        self._locked = True
        self.step = None

    def start(self, **more: Any) -> int:
        """Record the release (if not yet, with ``more`` ledger columns) and mark it running,
        in one transaction."""
        with unit_of_work(self.engine) as session:
            if self.row is None:
                r = self.request
                details = {**r.details, **more.pop("details", {})}
                row = start_release(
                    session,
                    r.app,
                    r.env,
                    r.kind,
                    requested_by=r.requested_by,
                    version=r.version,
                    flow_run_id=self.run_id,
                    details=details,
                    **{**r.fields, **more},
                )
                session.flush()
                self.row = int(row.id)
            mark_running(session, self.row, actor=self.request.requested_by)
        return self.row

    def callback(self, fn: Callable[..., Any], /, *args: Any) -> None:
        """Call ``fn(*args)`` when the block ends (after the finish, before the lock goes)."""
        self._stack.callback(fn, *args)

    def record_hosts(self, outcomes: Sequence[HostOutcome]) -> None:
        """Per-host ledger rows, in one transaction."""
        if outcomes:
            record_host_outcomes(self.engine, self.record(), list(outcomes))

    def _behind(self, error: BaseException) -> LedgerBehindHosts:
        """The error for a ledger write that failed after hosts changed: names the hosts."""
        if isinstance(error, LedgerBehindHosts):
            return error
        r = self.request
        return LedgerBehindHosts(self._reports, version=r.label, app=r.app, env=r.env, cause=error)

    def _record_applied(self, outcomes: Sequence[HostOutcome]) -> None:
        """:meth:`record_hosts` after hosts changed.

        Raises:
            LedgerBehindHosts: the ledger refused (busy past its budget): the hosts named.
        """
        try:
            self.record_hosts(outcomes)
        except LedgerError as e:
            raise self._behind(e) from e

    def apply(
        self,
        hosts: Sequence[str],
        work: Callable[[str], HostReport],
        *,
        action: str,
        batch_size: int | None = None,
        failure_limit: int | None = None,
        max_parallel: int | None = None,
    ) -> Applied:
        """``work(host)`` for every host, in batches of ``batch_size`` (default all at once,
        one task run per batch); each batch's host rows go to the ledger in one transaction;
        past ``failure_limit`` failed hosts (default: every host may fail) no new batch starts.

        A host whose ``work`` raises is a failed host (its report says why).
        """
        self._applying = True
        names = list(hosts)
        size = batch_size or len(names) or 1
        parallel = max_parallel or (self.target.env.max_parallel if self.target else 10)
        reports: list[HostReport] = []
        failed = 0
        stopped = False
        behind: LedgerBehindHosts | None = None
        unrecorded: tuple[str, ...] = ()
        limit = len(names) if failure_limit is None else failure_limit
        for number, group in enumerate(batches(names, size), start=1):
            result = fan_out(
                f"{action} batch {number}" if size < len(names) else action,
                work,
                group,
                parallel,
            )
            batch_reports = reports_of(result)
            reports += batch_reports
            self._reports = list(reports)
            try:
                self._record_applied(host_outcomes(batch_reports))
            except LedgerBehindHosts as e:
                behind = e  # decided below: past the threshold, switching back comes first
                unrecorded = tuple(r.host for r in batch_reports)
            failed += sum(1 for r in batch_reports if not r.ok)
            if exceeded(failed, limit):
                get_run_logger().error(
                    "batch %d: %d host(s) failed, %d tolerated: stopping", number, failed, limit
                )
                stopped = True
                break
            if behind is not None:
                raise behind  # no new batch while the ledger cannot say what the hosts do
        done = {r.host for r in reports}
        skipped = [h for h in names if h not in done]
        if skipped and behind is None:
            self._record_applied(
                [HostOutcome(h, HostStatus.skipped, step="not started") for h in skipped]
            )
        return Applied(reports, skipped, failed, limit, stopped, behind, unrecorded)

    def restore(
        self, applied: Applied, back: Callable[[HostReport], object], *, action: str = "switch back"
    ) -> list[HostReport]:
        """Switch every host of ``applied`` that switched back (``back(report)``), all at once;
        their ledger rows say ``rolled_back`` (or ``failed`` with why the switch-back failed).

        Returns:
            The reports with the switched hosts' reports replaced.
        """
        switched = {r.host: r for r in applied.reports if r.switched and r.status == "succeeded"}
        if not switched:
            if applied.unrecorded:  # the rows the ledger refused, once more
                wanted = set(applied.unrecorded)
                self._record_applied(
                    host_outcomes([r for r in applied.reports if r.host in wanted])
                )
                applied.ledger_behind, applied.unrecorded = None, ()
            return applied.reports
        parallel = self.target.env.max_parallel if self.target else 10
        result = fan_out(action, lambda h: back(switched[h]), list(switched), parallel)
        by_host = {o.host: o for o in result.outcomes}
        out: list[HostReport] = []
        for r in applied.reports:
            outcome = by_host.get(r.host)
            if outcome is None:
                out.append(r)
            elif outcome.ok:
                out.append(
                    HostReport(
                        r.host,
                        "rolled_back",
                        "rollback",
                        f"rolled back to {r.previous or 'no release'}",
                        r.previous,
                        False,
                        r.bytes_sent,
                        r.files_sent,
                        r.duration_s,
                    )
                )
            else:
                note = f"automatic rollback failed: {outcome.message}"
                out.append(
                    HostReport(r.host, "failed", "rollback", note, r.previous, True, r.bytes_sent)
                )
        logger = get_run_logger()
        mine = [r for r in out if r.host in switched]
        for r in mine:
            logger.warning("%s: %s", r.host, r.message)
        self._reports = list(out)
        applied.reports = out
        # with the switched hosts, the rows of a batch the ledger refused
        wanted = set(switched) | set(applied.unrecorded)
        self._record_applied(host_outcomes([r for r in out if r.host in wanted]))
        applied.ledger_behind, applied.unrecorded = None, ()
        return out

    def announcement(self, event: str, text: str) -> Announcement | None:
        """The notification of ``event`` for this release (None where the request says none)."""
        if not self.request.announce:
            return None
        r = self.request
        return Announcement(r.app, r.env, event, r.label, r.requested_by, text)

    def finish(
        self,
        status: ReleaseStatus,
        *,
        event: str | None,
        text: str = "",
        summary: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        also: Callable[[Any], object] | None = None,
    ) -> None:
        """Finish the release as ``status`` (with ``also``'s ledger writes in the same
        transaction), then send ``event`` (None: nobody is told, e.g. no change).

        Raises:
            LedgerBehindHosts: after hosts changed, the ledger refused (busy past its
                budget): the release is left running, the hosts named.
        """
        try:
            finish_release_run(
                self.engine,
                self.record(),
                status,
                summary=summary,
                details=details,
                also=also,
                announce=self.announcement(event, text) if event else None,
            )
        except LedgerError as e:
            if self._applying:
                raise self._behind(e) from e
            raise
        self.finished = True

    def fail_threshold(
        self, applied: Applied, *, details: dict[str, Any] | None = None
    ) -> ThresholdExceeded:
        """Finish a release stopped by the threshold (after :meth:`restore`): ``failed``,
        announced as rolled back; returns the error for the flow to raise."""
        rows = failed_rows(applied.reports)
        total = len(applied.reports) + len(applied.skipped)
        names = ", ".join(h for h, _, _ in rows[:10]) + (", ..." if len(rows) > 10 else "")
        error = ThresholdExceeded(
            f"{applied.failed} of {total} host(s) failed ({applied.limit} tolerated): {names}; "
            "stopped and switched every switched host back to its previous release",
            rows,
        )
        self.finish(
            ReleaseStatus.failed,
            event="rolled_back",
            text=outcome_text(str(error), rows),
            summary={"failed": len(rows), "hosts": total, "rolled_back": True},
            details={**(details or {}), "failed_hosts": [h for h, _, _ in rows]},
        )
        return error
