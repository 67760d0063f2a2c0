"""How a release run ends, from what its hosts did (:meth:`ReleaseLifecycle.finish_applied
<quayside.tasks.release_lifecycle.ReleaseLifecycle.finish_applied>` and ``fail_threshold``):
one outcome mapping and one per-host table for every release flow.

The mapping (the same for git deploys, rollbacks, hello releases and the documented example):

- no host changed and none failed: ``cancelled`` with ``summary.result == "no change"``, nobody
  told - so a no-change re-run never becomes the release a rollback goes back to;
- every host worked on failed: ``failed``, announced ``failed``;
- otherwise: ``succeeded``, announced, the failed hosts named (they stayed under the failure
  threshold: the release is live on the others). A flow that wants any failed host to fail
  the release says ``any_failure_fails`` (a rollback: the fleet must not be left split).

The host table artifact is published from the reports the lifecycle collected, on every way
out: this finish, the threshold's, and an error leaving the ``with`` block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.logging.loggers import get_run_logger

from quayside.deploy.errors import ThresholdExceeded
from quayside.ledger.models import ReleaseStatus
from quayside.release.host_outcomes import failed_rows, outcome_text
from quayside.release.host_report import HostReport
from quayside.tasks.background import InBackground
from quayside.tasks.release_apply import Applied
from quayside.tasks.release_report import publish_host_table

if TYPE_CHECKING:
    from quayside.tasks.release_lifecycle import ReleaseRequest

#: how long the finish waits for the table artifact it published beside the ledger write
TABLE_WAIT_S = 60


@dataclass(frozen=True)
class HostTable:
    """Where the run's per-host table goes: its artifact key and description."""

    key: str
    description: str


class OutcomeSteps:
    """:meth:`finish_applied`, :meth:`fail_threshold` and the host table: a part of
    :class:`~quayside.tasks.release_lifecycle.ReleaseLifecycle`, which sets the attributes
    below."""

    request: ReleaseRequest
    table: HostTable | None
    _reports: list[HostReport]
    _skipped: list[str]

    if TYPE_CHECKING:

        def finish(
            self,
            status: ReleaseStatus,
            *,
            event: str | None,
            text: str = "",
            summary: dict[str, Any] | None = None,
            details: dict[str, Any] | None = None,
            also: Callable[[Any], object] | None = None,
        ) -> None: ...

    def show_hosts(self, key: str, description: str) -> None:
        """Publish the per-host table under ``key`` when the release ends, however it ends."""
        self.table = HostTable(key, description)

    def publish_table(self) -> None:
        """The per-host table of the hosts worked on so far (nothing without a table or
        hosts); never raises: a release stands without its table (a WARNING)."""
        if self.table is None or not (self._reports or self._skipped):
            return
        try:
            publish_host_table(self.table.key, self.table.description, self._reports, self._skipped)
        except Exception as e:  # noqa: BLE001 - the table never fails a release
            get_run_logger().warning("could not publish the per-host table artifact: %s", e)

    def _finish_with_table(self, status: ReleaseStatus, **finish: Any) -> None:
        """:meth:`finish`, with the table artifact going out while the ledger is written."""
        publishing = InBackground(self.publish_table)
        try:
            self.finish(status, **finish)
        finally:
            try:
                publishing.join(TABLE_WAIT_S)
            except TimeoutError:  # the release stands; the table may still arrive
                get_run_logger().warning(
                    "the per-host table artifact was not published within %d s", TABLE_WAIT_S
                )

    def finish_applied(
        self,
        applied: Applied,
        headline: str,
        *,
        limit: int | None = None,
        event: str = "succeeded",
        any_failure_fails: bool = False,
        summary: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        also: Callable[[Any], object] | None = None,
    ) -> str:
        """Finish a release whose hosts were all worked on (not stopped by the threshold) from
        what they did (the mapping in the module docstring), and publish the host table.

        Args:
            applied: what :meth:`apply` did.
            headline: the notification's first line (``3 of 4 host(s) now run v2``); the
                failed hosts follow it, one line each.
            limit: how many failed hosts the run tolerated (named in the headline).
            event: the event of a success (``rolled_back`` for a rollback).
            any_failure_fails: one failed host fails the release.
            summary: more summary keys (over ``hosts``, ``failed``, ``changed``; its
                ``result`` is replaced by ``no change`` or ``failed`` where that is the
                outcome).
            details: merged into the release's details (``failed_hosts`` is set here).
            also: ledger writes in the finish's transaction.

        Returns:
            ``"no change"``, ``"succeeded"`` or ``"failed"``.
        """
        reports, bad, changed = applied.reports, applied.bad, applied.changed
        total = len(reports) + len(applied.skipped)
        base = {"hosts": total, "failed": len(bad), "changed": len(changed)}
        facts = {**(details or {}), "failed_hosts": [r.host for r in bad]}
        if not changed and not bad:
            self._finish_with_table(
                ReleaseStatus.cancelled,
                event=None,
                summary={**base, **(summary or {}), "result": "no change"},
                details=facts,
                also=also,
            )
            get_run_logger().info("no change: every host already had this release")
            return "no change"
        failed = bool(bad) and (any_failure_fails or len(bad) == len(reports))
        text = headline
        if bad and limit is not None:
            text += f"; {len(bad)} failed ({limit} tolerated)"
        self._finish_with_table(
            ReleaseStatus.failed if failed else ReleaseStatus.succeeded,
            event="failed" if failed else event,
            text=outcome_text(text, failed_rows(reports)),
            summary={**base, **(summary or {}), **({"result": "failed"} if failed else {})},
            details=facts,
            also=also,
        )
        return "failed" if failed else "succeeded"

    def fail_threshold(
        self,
        applied: Applied,
        *,
        details: dict[str, Any] | None = None,
        also: Callable[[Any], object] | None = None,
    ) -> ThresholdExceeded:
        """Finish a release stopped by the threshold (after :meth:`restore`): ``failed``,
        announced as rolled back, the host table published (with ``also``'s ledger writes in
        the same transaction); returns the error for the flow to raise."""
        rows = failed_rows(applied.reports)
        total = len(applied.reports) + len(applied.skipped)
        names = ", ".join(h for h, _, _ in rows[:10]) + (", ..." if len(rows) > 10 else "")
        error = ThresholdExceeded(
            f"{applied.failed} of {total} host(s) failed ({applied.limit} tolerated): {names}; "
            "stopped and switched every switched host back to its previous release",
            rows,
        )
        self._finish_with_table(
            ReleaseStatus.failed,
            event="rolled_back",
            text=outcome_text(str(error), rows),
            summary={"failed": len(rows), "hosts": total, "rolled_back": True},
            details={**(details or {}), "failed_hosts": [h for h, _, _ in rows]},
            also=also,
        )
        return error
