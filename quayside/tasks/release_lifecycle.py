"""One release run, from the approval to the finish: the lifecycle every release flow shares.

A release flow resolves its target and plans, then hands the rest to :class:`ReleaseLifecycle`:

1. :meth:`~ReleaseLifecycle.approve` - the approval gate where the environment's policy (or
   the caller) asks for one, with the plan as its description; the release is recorded
   ``awaiting_approval`` and the same row is used again when Prefect resumes a suspended run
   from the top. Refused or expired: the release ends ``cancelled``
   (:mod:`quayside.tasks.release_approve`).
2. :meth:`~ReleaseLifecycle.lock` - the app/env deploy lock (a ledger lease, after the
   approval: a pending approval holds nothing); a refusal is recorded as "not run" and the run
   ends ``Cancelled``.
3. :meth:`~ReleaseLifecycle.start` - the release recorded (if not yet) and ``running``.
4. :meth:`~ReleaseLifecycle.apply` - the hosts in batches, one task run per batch, each
   batch's host rows in one transaction; no new batch past the failure threshold
   (:mod:`quayside.tasks.release_apply`).
5. :meth:`~ReleaseLifecycle.restore` - every host that switched goes back, all at once,
   before anything slow (artifact storage, notifications) happens (the same module).
6. :meth:`~ReleaseLifecycle.finish_applied` (or :meth:`~ReleaseLifecycle.fail_threshold`,
   or :meth:`~ReleaseLifecycle.finish` for an outcome of the flow's own) - the outcome mapped
   from the hosts' reports (no change / succeeded / failed), the ledger release, the per-host
   table artifact (:meth:`~ReleaseLifecycle.show_hosts` names it), then the notification
   (succeeded / failed / rolled back, with the link to the run)
   (:mod:`quayside.tasks.release_outcome`). Leaving the ``with`` block on an error publishes
   the table and finishes the release ``failed`` (announced) if the flow did not - or
   ``succeeded`` with the error as a warning when hosts already switched to it (the ledger
   never says the opposite of the hosts); a suspension for approval and a refusal leave it as
   they recorded it.

This module holds the request, the ``with`` block, the ledger row and steps 2 and 3.

Example (a whole release flow body, see docs/architecture.md)::

    with ReleaseLifecycle(request, target) as life:
        life.approve(plan_markdown, asked=approval)
        life.lock()
        life.start()
        life.show_hosts(artifact_key("stamp", app, env), f"stamp {version}")
        applied = life.apply(target.host_names, on_host, action="stamp")
        result = life.finish_applied(applied, f"stamped {version}")
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from prefect.logging.loggers import get_run_logger
from prefect.runtime import flow_run

from quayside.errors import LedgerError
from quayside.inventory.resolve import Target
from quayside.ledger.models import Release, ReleaseKind, ReleaseStatus
from quayside.ledger.releases import mark_running, start_release, start_running_release
from quayside.release import stopping
from quayside.release.host_report import HostReport
from quayside.tasks.ledger import current_flow_run_id, ledger_engine
from quayside.tasks.release_apply import ApplySteps
from quayside.tasks.release_approve import ApproveStep
from quayside.tasks.release_finish import Announcement, finish_quietly, finish_release_run
from quayside.tasks.release_lock import NotRun, take_release_lock
from quayside.tasks.release_outcome import HostTable, OutcomeSteps


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


class ReleaseLifecycle(ApproveStep, ApplySteps, OutcomeSteps):
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
        self._skipped: list[str] = []
        self.table: HostTable | None = None
        """Where the per-host table goes (:meth:`show_hosts`); published on every finish."""

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
        self.publish_table()
        serving = [r.host for r in self._reports if r.status == "succeeded"]
        if serving:
            self._finish_served(why, serving)
        else:
            finish_quietly(self.engine, self.row, ReleaseStatus.failed, why, self.announcement(
                "failed", why
            ))  # fmt: skip
        self.finished = True

    def _finish_served(self, why: str, serving: list[str]) -> None:
        """An error after hosts switched (and were not switched back): the release is what
        those hosts serve, so it is recorded ``succeeded`` with the error as a warning -
        never ``failed`` while the hosts serve it."""
        total = len(self._reports) + len(self._skipped)
        bad = [r.host for r in self._reports if not r.ok]
        warning = f"after {len(serving)} host(s) switched: {why}"[:300]
        get_run_logger().error("%s; the release stands on those hosts", warning)
        text = f"{len(serving)} of {total} host(s) now run {self.request.label}; {warning}"
        finish_release_run(
            self.engine,
            self.row,
            ReleaseStatus.succeeded,
            summary={
                "hosts": total,
                "changed": len(serving),
                "failed": len(bad),
                "warnings": [warning],
            },
            details={"error": why[:500], "failed_hosts": bad},
            announce=self.announcement("succeeded", text),
            quiet=True,
        )

    # -- the steps ------------------------------------------------------------------------

    def record(self, **more: Any) -> int:
        """This run's ledger release, created on first use (one per run).

        Args:
            more: ledger columns for the row if it is created now (``status``, ``details``
                merged over the request's, any of the request's ``fields``).
        """
        if self.row is not None:
            return self.row
        self.row = int(self._new_release(more, running=False).id)
        return self.row

    def _new_release(self, more: dict[str, Any], *, running: bool) -> Release:
        """A new ledger release of the request, ``running`` or not (``more``: ledger columns
        for it, ``details`` merged over the request's); its own transaction, tried again while
        the ledger is busy."""
        r = self.request
        columns = dict(more)
        details = {**r.details, **columns.pop("details", {})}
        new = start_running_release if running else start_release
        return new(
            self.engine,
            r.app,
            r.env,
            r.kind,
            requested_by=r.requested_by,
            version=r.version,
            flow_run_id=self.run_id,
            details=details,
            **{**r.fields, **columns},
        )

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
        in one transaction; a ledger busy past one timeout (another writer) is waited for
        within the busy budget (:mod:`quayside.ledger.busy`), so it does not fail the run.

        Raises:
            RunStopping: the run is being cancelled or has crashed (its stop hook may already
                have read the hosts): nothing is marked running, and the release ends as its
                other exits record it.
        """
        why = stopping.stopping()
        if why is not None:
            raise stopping.RunStopping(
                f"{self.request.app}/{self.request.env}",
                f"the release was not started: the run is stopping ({why})",
            )
        if self.row is None:
            self.row = int(self._new_release(more, running=True).id)
        else:
            mark_running(self.engine, self.row, actor=self.request.requested_by)
        return self.row

    def callback(self, fn: Callable[..., Any], /, *args: Any) -> None:
        """Call ``fn(*args)`` when the block ends (after the finish, before the lock goes)."""
        self._stack.callback(fn, *args)

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
