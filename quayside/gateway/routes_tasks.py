"""``POST /api/tasks``: the older platform's task JSON (seed 000) becomes a Prefect run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.requests import Request

from quayside.auth.policy import policy_for
from quayside.deployments.catalogue import DeploymentSpec
from quayside.errors import InputError, NotFoundError
from quayside.gateway.auth import Caller, CallerDep
from quayside.gateway.auth_first import AuthFirstRoute
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import Forbidden
from quayside.gateway.run_parameters import check_parameters, refuse_foreign
from quayside.gateway.run_starts import start_in_turn
from quayside.gateway.submitting import submission_scope, submit_run, undo_on_failure
from quayside.gateway.triggering import catalogue_entry, start_status
from quayside.inventory import Inventory, resolve_target
from quayside.inventory.host_lookup import host_names
from quayside.runs.scheduled_approval import open_for_scheduled_run
from quayside.triggers.tasks_api import RunRequest, TaskSubmission, to_request
from quayside.triggers.template_args import map_arguments, missing_message

log = logging.getLogger("quayside.gateway")
router = APIRouter(tags=["tasks"], route_class=AuthFirstRoute)

CtxDep = Annotated[GatewayContext, Depends(context)]

RUN_NOW_SLACK = timedelta(seconds=30)
"""An exec_time less than this far in the future (scripts send ``now()``) runs immediately."""


class TaskAccepted(BaseModel):
    """The answer to a task submission."""

    code: int = Field(0, description="0: accepted (what the older platform's scripts check)")
    msg: str = Field(description="one line for a person: started / scheduled / already ...")
    flow_run_id: str
    ui_url: str
    scheduled_at: datetime | None
    status: str = Field(
        description="started, scheduled, or for a retried key already_running / already_ran"
    )
    deployment: str
    app: str | None = None
    env: str | None = None
    hosts: list[str] | None = Field(None, description="the inventory hosts the run deploys to")
    approval_request_id: int | None = None


def _spec(req: RunRequest) -> DeploymentSpec:
    """The catalogue entry the request's template starts, triggerable through the API."""
    resolved = req.template
    try:
        spec = catalogue_entry(req.deployment)
    except NotFoundError:
        where = f" ({resolved.where}.deployment)" if resolved.where else ""
        raise NotFoundError(
            f"temp_id: {resolved.label} starts deployment {req.deployment[:64]!r}{where}, "
            "which is not in the catalogue",
            hint="use a catalogue deployment name (`quayside deployments list`); check "
            "quayside.yaml with `quayside check`",
        ) from None
    if not spec.triggerable:
        raise Forbidden(f"temp_id: deployment {spec.name!r} cannot be started through the API")
    return spec


def _host_names(inventory: Inventory, params: dict[str, Any], hosts: list[str]) -> list[str]:
    """The inventory names of the task's ``hosts`` (addresses or names), checked against the
    run's environment when it has one."""
    app, env = params.get("app"), params.get("env")
    if isinstance(app, str) and isinstance(env, str):
        target = resolve_target(inventory, app, env)
        return host_names(inventory, hosts, within=target.host_names, target=f"{app}/{env}")
    return host_names(inventory, hosts)


@router.post(
    "/api/tasks",
    summary="Submit a task (the older platform's task JSON)",
    response_model=TaskAccepted,
    status_code=202,
)
async def submit_task(
    request: Request,
    submission: Annotated[TaskSubmission, Body()],
    caller: CallerDep,
    ctx: CtxDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="a retried request with the same key never starts a second run"),
    ] = None,
) -> JSONResponse:
    """Start (or schedule, with ``exec_time``) the run a task asks for.

    ``temp_id`` is a task template's number (``task_templates`` in quayside.yaml: the
    deployment, fixed parameters and what each argument becomes) or a deployment name.
    ``args``/``hosts`` may be JSON objects or Python-literal strings (parsed, never evaluated);
    ``hosts`` are inventory host addresses or names of the run's environment. Every refused
    argument, missing or mistyped parameter and unknown host is a 4xx naming it, answered
    before anything is recorded: a refused task leaves no run, approval request or audit
    event. The token's user is the submitter and needs the deployment's role (DEVELOPER for
    git-deploy) on everything the run acts on; arguments the deployment does not take, and the
    ones Quayside sets itself (``requested_by``, ``approval``), are refused. ``schedule:
    new`` requires approval; ``ready`` runs without one unless the environment's policy asks
    for it. A scheduled run that needs approval gets its ledger approval request once the run
    exists, so it can be approved before its time comes. ``exec_time`` without an offset is
    local time in the inventory's ``timezone``.
    """
    return await start_in_turn(
        request, lambda: _plan_task(submission, caller, ctx, idempotency_key)
    )


def _plan_task(
    submission: TaskSubmission, caller: Caller, ctx: GatewayContext, idempotency_key: str | None
) -> Callable[[], JSONResponse]:
    """Every check of a task (each refusal a 4xx, nothing recorded); returns its start."""
    inventory = ctx.inventory()
    now = datetime.now(UTC)
    req = to_request(
        submission,
        inventory.task_aliases,
        inventory.timezone,
        templates=inventory.task_templates,
        user=caller.name,
        idempotency_key=idempotency_key,
        now=now,
    )
    spec = _spec(req)
    template = req.template.template
    params = map_arguments(
        template, req.parameters, inventory, label=req.template.label, where=req.template.where
    )
    names = ctx.deployment_parameters(spec.full_name)
    refuse_foreign(spec.name, params, names)
    check_parameters(
        ctx, spec, params, missing_message=lambda m: missing_message(template, m, spec.name)
    )
    if req.hosts:
        if "hosts" not in names:
            raise InputError(f"hosts: {spec.name} does not take hosts")
        params["hosts"] = _host_names(inventory, params, req.hosts)
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

    def start() -> JSONResponse:
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
        status, message = start_status(handle)
        if handle.created and handle.scheduled_at is not None and scheduled_at is not None:
            when = f"{handle.scheduled_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
            status, message = "scheduled", f"scheduled for {when}: {handle.ui_url}"
        body = TaskAccepted(
            msg=message,
            flow_run_id=handle.id,
            ui_url=handle.ui_url,
            scheduled_at=handle.scheduled_at if scheduled_at else None,
            status=status,
            deployment=spec.name,
            app=app,
            env=env,
            hosts=params.get("hosts"),
            approval_request_id=request_id,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=202)

    return start
