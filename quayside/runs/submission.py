"""Authorized run submission: how every trigger that knows its user (gateway routes, chat, the
CLI with a token) starts a run for them.

1. :func:`authorized_scope`: the user's right is checked on what the run will act on
   (:mod:`quayside.auth.run_scope`, with the catalogue entry's ``scope`` and ``minimum_role``);
2. the caller creates the run held (:func:`quayside.runs.start_run` with
   ``for_submission=True``, or the gateway's idempotent start): tagged
   :data:`~quayside.auth.submission_tag.SUBMISSION_TAG` and, unless it is due later anyway,
   Scheduled ``AwaitingSubmission`` and due in :data:`~quayside.runs.client.HOLD`, so no worker can
   start it yet;
3. :func:`record`: the submission is recorded in the ledger, so the run checks its submitter
   again when it starts and a revoked user's scheduled runs can be found; then the run is
   released (:func:`~quayside.runs.client.release_run`: due now, or at its scheduled time).
   A run therefore never starts before its submission exists. If recording fails, the run
   this submission created is deleted (a held or scheduled one: it has not started): a
   refused submission leaves nothing behind. A run whose record never came (its trigger
   died) starts at its held time and refuses itself
   (:func:`quayside.auth.run_start.confirm_submitter`).

A retried submission (the same idempotency key) finds the run and records nothing twice; it
never changes the run's state: the request that created the run releases it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from quayside.auth.run_scope import RunScope, ScopeKind, authorize_run, scope_of_run
from quayside.deployments.catalogue import DeploymentSpec
from quayside.errors import QuaysideError
from quayside.inventory import Inventory
from quayside.ledger.submissions import record_submission
from quayside.runs.client import RunHandle, delete_run, release_run

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("quayside.runs")


def authorized_scope(
    engine: Engine,
    inventory: Inventory,
    user: str,
    spec: DeploymentSpec,
    params: Mapping[str, Any],
) -> RunScope:
    """What a run of ``spec`` with ``params`` acts on, after checking ``user`` may act there.

    Args:
        engine: the ledger.
        inventory: the inventory of the moment.
        user: the authenticated user (a ledger user name).
        spec: the catalogue entry.
        params: the run's parameters, the deployment's defaults included.

    Raises:
        PermissionDenied: the user lacks the deployment's role on a place the run touches.
        InputError / NotFoundError: parameters that name nothing the inventory knows.
    """
    kind: ScopeKind = spec.scope  # type: ignore[assignment]
    scope = scope_of_run(
        inventory,
        deployment=spec.name,
        kind=kind,
        minimum_role=spec.minimum_role,
        params=params,
    )
    authorize_run(engine, user, scope)
    return scope


@contextmanager
def undo_on_failure(handle: RunHandle, *, scheduled: bool) -> Iterator[None]:
    """Delete the run ``handle`` if the block fails (only a run this submission created and
    that has not started: a scheduled one, or one still held for its submission), so a refused
    submission leaves no run behind; a retried submission that found an existing run never
    deletes it."""
    try:
        yield
    except BaseException:
        if handle.created and (scheduled or handle.held):
            try:
                delete_run(handle.id)
            except Exception as e:  # the original error is what the caller must see
                log.warning("could not delete run %s after a failed submission: %s", handle.id, e)
        raise


def record(
    engine: Engine,
    handle: RunHandle,
    user: str,
    spec: DeploymentSpec,
    scope: RunScope,
    *,
    via: str,
    scheduled_at: datetime | None = None,
    on_behalf_of: str | None = None,
) -> RunHandle:
    """Record that ``user`` submitted the run ``handle`` (whose right on ``scope`` was checked
    by :func:`authorized_scope`) through ``via``, then release it (see the module docstring);
    ``on_behalf_of``: the name a SUPER user asked for it in the name of (the audit event names
    both). The run this submission created is deleted if the record fails.

    Returns:
        The run as it is after its release (due now, or at its scheduled time); a run that
        could not be released is logged and starts at its held time, its submission checked.
    """
    with undo_on_failure(handle, scheduled=scheduled_at is not None):
        record_submission(
            engine,
            flow_run_id=handle.id,
            deployment=spec.name,
            scope_kind=spec.scope,
            minimum_role=spec.minimum_role,
            principal=user,
            via=via,
            app=scope.app,
            env=scope.env,
            scheduled_at=scheduled_at,
            on_behalf_of=on_behalf_of,
        )
    try:
        return release_run(handle)
    except QuaysideError as e:  # recorded: the run starts at its held time and checks it
        log.warning("run %s not released (%s); it starts at its held time", handle.id, e)
        return handle
