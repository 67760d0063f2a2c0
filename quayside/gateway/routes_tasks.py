"""``POST /api/tasks``: the older platform's task JSON (seed 000) becomes a Prefect run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from quayside.auth.approvals import link_run
from quayside.auth.policy import policy_for
from quayside.errors import InputError, NotFoundError
from quayside.gateway.auth import CallerDep, require
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import Forbidden
from quayside.gateway.triggering import accepted_parameters, catalogue_entry, start
from quayside.inventory import Inventory
from quayside.runs.scheduled_approval import open_for_scheduled_run
from quayside.triggers.tasks_api import RunRequest, TaskSubmission, to_request

log = logging.getLogger("quayside.gateway")
router = APIRouter(tags=["tasks"])

CtxDep = Annotated[GatewayContext, Depends(context)]

ARG_ALIASES = {"APP_NAME": "app", "TAG": "ref", "ENV": "env", "VERSION": "ref"}
"""Upper-case argument names the older platform's scripts send, and the parameter they mean."""
SCOPE_ARGS = frozenset({"app", "env"})
"""Arguments that say which app/environment a task is about (for roles and policy), accepted
even when the deployment takes no such parameter."""
RUN_NOW_SLACK = timedelta(seconds=30)
"""An exec_time less than this far in the future (scripts send ``now()``) runs immediately."""


class TaskAccepted(BaseModel):
    """The answer to a task submission."""

    flow_run_id: str
    ui_url: str
    scheduled_at: datetime | None
    status: str
    deployment: str
    approval_request_id: int | None = None
    ignored_arguments: list[str] = []


def _parameters(req: RunRequest) -> dict[str, Any]:
    """Flow parameters from ``args``: known old upper-case names mapped, others kept."""
    params: dict[str, Any] = {}
    for key, value in req.parameters.items():
        name = ARG_ALIASES.get(key, key)
        if name != key and name in req.parameters:
            continue  # the proper name was given too; it wins
        params[name] = value
    return params


def _space_of(inventory: Inventory, app: str | None) -> tuple[str, str | None]:
    if app is None:
        return "default", None
    found = inventory.apps.get(app)
    if found is None:
        raise NotFoundError(f"args.app: no app {app[:64]!r} in the inventory")
    return found.space, app


@router.post(
    "/api/tasks",
    summary="Submit a task (the older platform's task JSON)",
    response_model=TaskAccepted,
    status_code=202,
)
def submit_task(
    submission: Annotated[TaskSubmission, Body()],
    caller: CallerDep,
    ctx: CtxDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="a retried request with the same key never starts a second run"),
    ] = None,
) -> JSONResponse:
    """Start (or schedule, with ``exec_time``) a run of the deployment named by ``temp_id``.

    ``args``/``hosts`` may be JSON objects or Python-literal strings (parsed, never evaluated).
    The token's user is the submitter and needs DEVELOPER on the app's space. ``schedule:
    new`` requires approval; ``ready`` runs without one unless the environment's policy asks
    for it. A scheduled run that needs approval gets its ledger approval request now, so it can
    be approved before its time comes.
    """
    inventory = ctx.inventory()
    now = datetime.now(UTC)
    req = to_request(
        submission,
        inventory.task_aliases,
        inventory.timezone,
        user=caller.name,
        idempotency_key=idempotency_key,
        now=now,
    )
    try:
        spec = catalogue_entry(req.deployment)
    except NotFoundError:
        raise NotFoundError(
            f"temp_id: no deployment {req.deployment[:64]!r} in the catalogue",
            hint="use a catalogue deployment name or a numeric alias from task_aliases",
        ) from None
    if not spec.triggerable:
        raise Forbidden(f"temp_id: deployment {spec.name!r} cannot be started through the API")
    params = _parameters(req)
    app = params.get("app") or spec.parameters.get("app")
    if app is not None and not isinstance(app, str):
        raise InputError("args.app: must be a string")
    env = params.get("env") or spec.parameters.get("env")
    space, project = _space_of(inventory, app)
    require(ctx, caller.name, space, project, "DEVELOPER")

    scheduled_at = (
        req.scheduled_at if req.scheduled_at and req.scheduled_at > now + RUN_NOW_SLACK else None
    )
    policy = policy_for(
        inventory, app, env if isinstance(env, str) else None, asked=req.require_approval
    )
    params["requested_by"] = caller.name
    params["approval"] = policy is not None  # never skip a gate the environment asks for
    if req.hosts:
        params["hosts"] = req.hosts
    names = ctx.deployment_parameters(spec.full_name)
    request_id: int | None = None
    if scheduled_at is not None and policy is not None and "approval_request_id" in names:
        request_id = open_for_scheduled_run(
            ctx.engine(),
            deployment=spec.name,
            app=str(app or spec.name),
            env=str(env or "-"),
            space=space,
            policy=policy,
            scheduled_at=scheduled_at,
            requested_by=req.submitter or caller.name,
            via="the task API",
            details=f"Task: {req.task_name}\n\n{req.details}",
            idempotency_key=req.idempotency_key,
        )
        params["approval_request_id"] = request_id
    kept, dropped = accepted_parameters(ctx, spec, params)
    user_args = {ARG_ALIASES.get(k, k) for k in req.parameters}
    unknown = sorted(d for d in dropped if d in user_args and d not in SCOPE_ARGS)
    if unknown:
        raise InputError(
            "args: " + ", ".join(f"{name}: not a parameter of {spec.name}" for name in unknown),
            hint="accepted parameters: " + ", ".join(sorted(names)),
        )
    handle = start(
        ctx,
        spec.name,
        kept,
        idempotency_key=req.idempotency_key,
        scheduled_at=scheduled_at,
        tags=["trigger:task-api", *([f"app:{app}"] if app else [])],
    )
    if request_id is not None:
        link_run(ctx.engine(), request_id, handle.id)
    body = TaskAccepted(
        flow_run_id=handle.id,
        ui_url=handle.ui_url,
        scheduled_at=handle.scheduled_at if scheduled_at else None,
        status="scheduled" if scheduled_at else "started",
        deployment=spec.name,
        approval_request_id=request_id,
        ignored_arguments=[d for d in dropped if d not in user_args or d in SCOPE_ARGS],
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=202)
