"""Authorized run submission: the one way a gateway route (task API, chat) starts a run for
an authenticated user.

The user's right is checked on what the run will act on (``quayside.auth.run_scope``), the run
is created through ``quayside.runs``, and the submission is recorded in the ledger so the run
checks its submitter again when it starts and a revoked user's scheduled runs can be found.
A submission that fails after its run was created deletes that run: nothing is left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from deployments.catalogue import DeploymentSpec
from quayside.auth.run_scope import RunScope, ScopeKind, authorize_run, scope_of_run
from quayside.gateway.context import GatewayContext
from quayside.gateway.triggering import start
from quayside.ledger.submissions import record_submission
from quayside.runs import RunHandle, delete_run

log = logging.getLogger("quayside.gateway")


def submission_scope(
    ctx: GatewayContext, user: str, spec: DeploymentSpec, params: Mapping[str, Any]
) -> RunScope:
    """What a run of ``spec`` with ``params`` acts on, after checking ``user`` may act there.

    Raises:
        PermissionDenied: the user lacks the deployment's role on a place the run touches.
        InputError / NotFoundError: parameters that name nothing the inventory knows.
    """
    kind: ScopeKind = spec.scope  # type: ignore[assignment]
    scope = scope_of_run(
        ctx.inventory(),
        deployment=spec.name,
        kind=kind,
        minimum_role=spec.minimum_role,
        params=params,
    )
    authorize_run(ctx.engine(), user, scope)
    return scope


@contextmanager
def undo_on_failure(handle: RunHandle, *, scheduled: bool) -> Iterator[None]:
    """Delete the run ``handle`` if the block fails (only a run that has not started: a
    scheduled one), so a refused submission leaves no run behind."""
    try:
        yield
    except BaseException:
        if scheduled:
            try:
                delete_run(handle.id)
            except Exception as e:  # the original error is what the caller must see
                log.warning("could not delete run %s after a failed submission: %s", handle.id, e)
        raise


def submit_run(
    ctx: GatewayContext,
    user: str,
    spec: DeploymentSpec,
    scope: RunScope,
    params: dict[str, Any],
    *,
    via: str,
    idempotency_key: str,
    tags: list[str],
    scheduled_at: datetime | None = None,
) -> RunHandle:
    """Start (or schedule) a run of ``spec`` for ``user``, whose right on ``scope`` the caller
    checked with :func:`submission_scope`, and record the submission.

    Returns:
        The run's handle (the existing run for a retried idempotency key).
    """
    handle = start(
        ctx,
        spec.name,
        params,
        idempotency_key=idempotency_key,
        user=user,
        app=scope.app,
        env=scope.env,
        scheduled_at=scheduled_at,
        tags=tags,
    )
    with undo_on_failure(handle, scheduled=scheduled_at is not None):
        record_submission(
            ctx.engine(),
            flow_run_id=handle.id,
            deployment=spec.name,
            scope_kind=spec.scope,
            minimum_role=spec.minimum_role,
            principal=user,
            via=via,
            app=scope.app,
            env=scope.env,
            scheduled_at=scheduled_at,
        )
    return handle
