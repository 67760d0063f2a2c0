"""The host steps of a release run (:meth:`ReleaseLifecycle.apply
<quayside.tasks.release_lifecycle.ReleaseLifecycle.apply>` and ``restore``): every host in
batches with the failure threshold, each batch's host rows in one transaction, then every
switched host back at once when the threshold stopped it; a ledger that refuses rows after
hosts changed is reported naming the hosts (:class:`LedgerBehindHosts`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.logging.loggers import get_run_logger
from sqlalchemy import Engine

from quayside.deploy.policy import exceeded
from quayside.errors import LedgerError
from quayside.fanout import batches
from quayside.inventory.resolve import Target
from quayside.ledger.models import HostStatus
from quayside.ledger.releases import HostOutcome, record_host_outcomes
from quayside.release.host_outcomes import host_outcomes
from quayside.release.host_report import HostReport
from quayside.release.ledger_behind import LedgerBehindHosts
from quayside.tasks.fanout import fan_out
from quayside.tasks.release_report import reports_of

if TYPE_CHECKING:
    from quayside.tasks.release_lifecycle import ReleaseRequest


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


class ApplySteps:
    """:meth:`apply`, :meth:`restore` and the host rows: a part of
    :class:`~quayside.tasks.release_lifecycle.ReleaseLifecycle`, which sets the attributes
    below."""

    request: ReleaseRequest
    target: Target | None
    engine: Engine
    _applying: bool
    _reports: list[HostReport]
    _skipped: list[str]

    if TYPE_CHECKING:

        def record(self, **more: Any) -> int: ...

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
        self._skipped = list(skipped)
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
