"""Authorized run submission from gateway routes (task API, chat): the core
(:mod:`quayside.runs.submission`, shared with the CLI) with the gateway's context and its
idempotent start.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from quayside.auth.run_scope import RunScope
from quayside.deployments.catalogue import DeploymentSpec
from quayside.gateway.context import GatewayContext
from quayside.gateway.triggering import start
from quayside.runs import RunHandle
from quayside.runs.submission import authorized_scope, record, undo_on_failure

__all__ = ["submission_scope", "submit_run", "undo_on_failure"]


def submission_scope(
    ctx: GatewayContext, user: str, spec: DeploymentSpec, params: Mapping[str, Any]
) -> RunScope:
    """What a run of ``spec`` with ``params`` acts on, after checking ``user`` may act there.

    Raises:
        PermissionDenied: the user lacks the deployment's role on a place the run touches.
        InputError / NotFoundError: parameters that name nothing the inventory knows.
    """
    return authorized_scope(ctx.engine(), ctx.inventory(), user, spec, params)


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
    on_behalf_of: str | None = None,
) -> RunHandle:
    """Start (or schedule) a run of ``spec`` for ``user``, whose right on ``scope`` the caller
    checked with :func:`submission_scope`, and record the submission (``on_behalf_of``: the
    name a SUPER user asked for it in the name of; the audit event names both). The run is
    created held and released once the submission is recorded (:mod:`quayside.runs.submission`).

    Returns:
        The run's handle as released (the existing run for a retried idempotency key).
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
        for_submission=True,  # held: no worker takes it before the record below exists
    )
    return record(
        ctx.engine(),
        handle,
        user,
        spec,
        scope,
        via=via,
        scheduled_at=scheduled_at,
        on_behalf_of=on_behalf_of,
    )
