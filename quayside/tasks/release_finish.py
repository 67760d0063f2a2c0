"""The end of a release, on every exit path: the ledger release finished with its status and
summary, then the people told (succeeded / failed / rolled back), with a link to the run.

The order is the point: whatever must happen on the hosts (switching back) happens before
:func:`finish_release_run` is called, and the notification goes out after the ledger write, so
nothing slow stands between a failure and the switch-back, and a notifier that is down,
slow or misconfigured never fails the release (it is one WARNING in the run log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect.exceptions import MissingContextError
from prefect.logging.loggers import get_run_logger
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.errors import QuaysideError
from quayside.ledger.busy import retry_busy
from quayside.ledger.db import unit_of_work
from quayside.ledger.models import ReleaseStatus
from quayside.ledger.release_queries import get_release
from quayside.ledger.releases import finish_release
from quayside.release import stopping
from quayside.tasks.notify import notify_release_event


@dataclass(frozen=True)
class Announcement:
    """What to tell the app's notification channels when a release finishes.

    Attributes:
        app: the app name in quayside.yaml (its ``notify`` list names the channels).
        env: the environment name.
        event: ``succeeded``, ``failed`` or ``rolled_back`` (see quayside.notify.events).
        version: the version, tag or commit released.
        actor: who asked for the release.
        text: Markdown details under the summary (the error, the hosts that failed).
    """

    app: str
    env: str
    event: str
    version: str | None = None
    actor: str | None = None
    text: str = ""


def finish_release_run(
    engine: Engine,
    release_id: int | None,
    status: ReleaseStatus,
    *,
    announce: Announcement | None = None,
    summary: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    also: Callable[[Session], object] | None = None,
    quiet: bool = False,
) -> bool:
    """Finish ledger release ``release_id`` as ``status``, then announce it.

    Args:
        engine: the ledger.
        release_id: the release this run recorded (None: nothing to finish, nothing sent).
        status: the final status.
        announce: the notification to send once the ledger says so (None sends none: a
            cancelled or no-change release, or one the approval gate already announced).
        summary: replaces the release's summary.
        details: merged into the release's details.
        also: more ledger writes that commit in the same transaction (host rows, a pause of
            automatic triggers).
        quiet: on the way out of an error: a release that has already finished is left as
            it is (and not announced again) instead of raising.

    Returns:
        True when this call finished the release (and sent ``announce``); False, with
        nothing written or sent, for a ``running`` release while the run is stopping
        (:mod:`quayside.release.stopping`: its hook records it as interrupted, with what the
        hosts serve).

    Raises:
        quayside.errors.QuaysideError: the release has already finished, or the ledger
            refused the write (unless ``quiet``).
    """
    if release_id is None:
        return False
    why_stopping = stopping.stopping()
    if why_stopping is not None and _is_running(engine, release_id):
        # the run's stop hook records a running release as the hosts serve it (interrupted);
        # an outcome the body reaches now (a hook whose ssh the stop killed) is not the
        # release's. One not running yet (pending, awaiting approval) changed no host: the
        # hook leaves it, so it is finished here as the body says.
        _logger().warning(
            "release %s not finished as %s: the run is stopping (%s)",
            release_id,
            status.value,
            why_stopping,
        )
        return False
    try:
        _finish_in_ledger(engine, release_id, status, summary, details, also)
    except QuaysideError:
        if not quiet:
            raise
        return False
    except Exception:  # on the way out of an error: that error is the one to report
        if not quiet:
            raise
        _logger().warning("could not finish release %s as %s", release_id, status.value)
        return False
    if announce is not None:
        announce_release(announce)
    return True


def _is_running(engine: Engine, release_id: int) -> bool:
    """Whether ledger release ``release_id`` is ``running`` (True when it cannot be read: the
    stop hook, or the next reconcile, decides then)."""
    try:
        return get_release(engine, release_id).status is ReleaseStatus.running
    except QuaysideError:
        return True


@retry_busy
def _finish_in_ledger(
    engine: Engine,
    release_id: int,
    status: ReleaseStatus,
    summary: dict[str, Any] | None,
    details: dict[str, Any] | None,
    also: Callable[[Session], object] | None,
) -> None:
    """The finish and ``also``'s writes in one transaction, tried again while the ledger is
    busy (within its budget: :mod:`quayside.ledger.busy`)."""
    with unit_of_work(engine) as session:
        if also is not None:
            also(session)
        finish_release(session, release_id, status, summary=summary, details=details)


def finish_quietly(
    engine: Engine,
    release_id: int | None,
    status: ReleaseStatus,
    why: str,
    announce: Announcement | None = None,
) -> None:
    """On the way out of an error: finish the release as ``status`` with ``why`` in its
    details if it has not finished yet, then send ``announce``; never raises."""
    finish_release_run(
        engine, release_id, status, details={"error": why[:500]}, announce=announce, quiet=True
    )


def announce_release(announce: Announcement) -> int:
    """Send ``announce`` with the link to the current run; never raises (a failure is a
    WARNING).

    Returns:
        How many channels accepted it.
    """
    try:
        return notify_release_event(
            app=announce.app,
            env=announce.env,
            event=announce.event,
            text=announce.text,
            version=announce.version,
            actor=announce.actor,
        )
    except Exception as e:  # noqa: BLE001 - a notification never fails a release
        _logger().warning(
            "notification %s of %s/%s not sent: %s", announce.event, announce.app, announce.env, e
        )
        return 0


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("quayside.notify")
