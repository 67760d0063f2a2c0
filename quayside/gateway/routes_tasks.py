"""``POST /api/tasks``: the older platform's task JSON (seed 000) becomes a Prefect run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from quayside.auth.policy import policy_for
from quayside.errors import InputError, NotFoundError
from quayside.gateway.auth import CallerDep
from quayside.gateway.auth_first import AuthFirstRoute
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import Forbidden
from quayside.gateway.submitting import submission_scope, submit_run, undo_on_failure
from quayside.gateway.triggering import catalogue_entry
from quayside.runs.scheduled_approval import open_for_scheduled_run
from quayside.triggers.tasks_api import RunRequest, TaskSubmission, to_request

log = logging.getLogger("quayside.gateway")
router = APIRouter(tags=["tasks"], route_class=AuthFirstRoute)

CtxDep = Annotated[GatewayContext, Depends(context)]

ARG_ALIASES = {"APP_NAME": "app", "TAG": "ref", "ENV": "env", "VERSION": "ref"}
"""Upper-case argument names the older platform's scripts send, and the parameter they mean."""
RESERVED_ARGS = frozenset({"requested_by", "approval", "approval_request_id"})
"""Parameters Quayside sets itself: who asked (the token's user) and whether the run waits for
approval (the environment's policy). A caller naming them is refused, never believed."""
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


def _refuse_foreign_arguments(
    deployment: str, params: dict[str, Any], names: frozenset[str]
) -> None:
    """Refuse what the deployment does not take and what Quayside sets itself, naming each."""
    problems = [
        f"{name}: set by Quayside (the token's user, the environment's policy), not by the caller"
        for name in sorted(params)
        if name in RESERVED_ARGS
    ]
    problems += [
        f"{name}: not a parameter of {deployment}"
        for name in sorted(params)
        if name not in names and name not in RESERVED_ARGS
    ]
    if problems:
        taken = ", ".join(sorted(n for n in names if n not in RESERVED_ARGS))
        raise InputError("args: " + "; ".join(problems), hint=f"accepted parameters: {taken}")


def _parameters(req: RunRequest) -> dict[str, Any]:
    """Flow parameters from ``args``: known old upper-case names mapped, others kept."""
    params: dict[str, Any] = {}
    for key, value in req.parameters.items():
        name = ARG_ALIASES.get(key, key)
        if name != key and name in req.parameters:
            continue  # the proper name was given too; it wins
        params[name] = value
    return params


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
    The token's user is the submitter and needs the deployment's role (DEVELOPER for
    git-deploy) on everything the run acts on; arguments the deployment does not take, and the
    ones Quayside sets itself (``requested_by``, ``approval``), are refused. ``schedule:
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
    names = ctx.deployment_parameters(spec.full_name)
    _refuse_foreign_arguments(spec.name, params, names)
    if req.hosts:
        if "hosts" not in names:
            raise InputError(f"hosts: {spec.name} does not take hosts")
        params["hosts"] = req.hosts
    scope = submission_scope(ctx, caller.name, spec, {**spec.parameters, **params})
    app, env = scope.app, scope.env

    scheduled_at = (
        req.scheduled_at if req.scheduled_at and req.scheduled_at > now + RUN_NOW_SLACK else None
    )
    policy = policy_for(inventory, app, env, asked=req.require_approval)
    params["requested_by"] = caller.name
    if "approval" in names:
        params["approval"] = policy is not None  # never skip a gate the environment asks for
    elif policy is not None:
        raise InputError(
            f"{spec.name} has no approval gate, but {app}/{env} requires approval",
            hint="use a deployment with an approval gate (git-deploy)",
        )
    handle = submit_run(
        ctx,
        caller.name,
        spec,
        scope,
        params,
        via="task-api",
        idempotency_key=req.idempotency_key,
        scheduled_at=scheduled_at,
        tags=["trigger:task-api", *([f"app:{app}"] if app else [])],
    )
    request_id: int | None = None
    if scheduled_at is not None and policy is not None and app is not None and env is not None:
        with undo_on_failure(handle, scheduled=True):
            request_id = open_for_scheduled_run(
                ctx.engine(),
                flow_run_id=handle.id,
                deployment=spec.name,
                app=app,
                env=env,
                version=str(params.get("ref") or params.get("version") or ""),
                space=scope.places[0][0],
                policy=policy,
                scheduled_at=scheduled_at,
                requested_by=caller.name,
                via="the task API",
                details=f"Task: {req.task_name}\n\n{req.details}",
            )
    body = TaskAccepted(
        flow_run_id=handle.id,
        ui_url=handle.ui_url,
        scheduled_at=handle.scheduled_at if scheduled_at else None,
        status="scheduled" if scheduled_at else "started",
        deployment=spec.name,
        approval_request_id=request_id,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=202)
