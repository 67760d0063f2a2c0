"""``POST /api/runs``: start a catalogue deployment as the token's user - what ``quayside
deploy`` does with a token, without the ledger and its ORM in the command's process (the
gateway has them loaded: the command's submit costs an HTTP request instead of ~0.4 s of CPU).

The same rules as every other trigger path: the token's user is the submitter and needs the
deployment's role on everything the run acts on (checked here and again when the run starts);
``requested_by`` and ``approval`` are Quayside's, never the caller's; a parameter the
deployment does not take, a missing one or a wrong type is a 400 naming it, answered before
anything is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.requests import Request

from quayside.errors import InputError
from quayside.gateway.auth import Caller, CallerDep
from quayside.gateway.auth_first import AuthFirstRoute
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import Forbidden
from quayside.gateway.run_parameters import check_parameters, refuse_foreign
from quayside.gateway.run_starts import start_in_turn
from quayside.gateway.submitting import submission_scope, submit_run
from quayside.gateway.triggering import catalogue_entry, start_status
from quayside.user_names import RULE, is_name

router = APIRouter(tags=["runs"], route_class=AuthFirstRoute)
CtxDep = Annotated[GatewayContext, Depends(context)]


class RunSubmission(BaseModel):
    """A run to start now."""

    model_config = {"extra": "forbid"}

    deployment: str = Field(max_length=64, description="a catalogue deployment (git-deploy)")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="the deployment's parameters (app, env, ref, ...)"
    )
    on_behalf_of: str | None = Field(
        None,
        max_length=64,
        description="SUPER users only: the run's requested_by (the token's user stays the "
        "submitter the ledger and the approval rules see)",
    )


class RunStarted(BaseModel):
    """The answer: the run, and who it is for."""

    flow_run_id: str
    name: str
    ui_url: str
    status: str = Field(description="started, or for a retried key already_running / already_ran")
    msg: str
    deployment: str
    app: str | None = None
    env: str | None = None
    requested_by: str
    submitter: str


@router.post(
    "/api/runs",
    summary="Start a deployment run as the token's user",
    response_model=RunStarted,
    status_code=202,
)
async def start_deployment_run(
    request: Request,
    submission: Annotated[RunSubmission, Body()],
    caller: CallerDep,
    ctx: CtxDep,
    idempotency_key: Annotated[
        str,
        Header(
            min_length=8,
            max_length=128,
            description="one per command: a retried request never starts a second run",
        ),
    ],
) -> JSONResponse:
    """Start ``deployment`` with ``parameters`` for the token's user (``quayside deploy`` with a
    token sends this). 202 with the run; 400 naming a bad parameter; 403 without the
    deployment's role on the app/environment/hosts, or ``on_behalf_of`` from a non-SUPER."""
    return await start_in_turn(request, lambda: _plan_run(submission, caller, ctx, idempotency_key))


def _plan_run(
    submission: RunSubmission, caller: Caller, ctx: GatewayContext, idempotency_key: str
) -> Callable[[], JSONResponse]:
    """Every check of a run request (each refusal a 4xx, nothing recorded); returns its
    start."""
    spec = catalogue_entry(submission.deployment)
    if not spec.triggerable:
        raise Forbidden(f"deployment: {spec.name!r} cannot be started through the API")
    requested_by = caller.name
    if submission.on_behalf_of is not None and submission.on_behalf_of != caller.name:
        if not caller.is_super:
            raise Forbidden(
                f"--as is for SUPER users; {caller.name} is not one (on_behalf_of: the run "
                f"would be requested by {caller.name} anyway)",
                hint="leave out --as / on_behalf_of: your token says who you are",
            )
        if not is_name(submission.on_behalf_of):
            raise InputError(f"on_behalf_of: a user name has {RULE}")
        requested_by = submission.on_behalf_of
    params = dict(submission.parameters)
    names = ctx.deployment_parameters(spec.full_name)
    refuse_foreign(spec.name, params, names)
    params["requested_by"] = requested_by
    check_parameters(ctx, spec, params)
    scope = submission_scope(ctx, caller.name, spec, {**spec.parameters, **params})
    on_behalf_of = requested_by if requested_by != caller.name else None
    tags = ["trigger:cli", *(f"{k}:{v}" for k, v in (("app", scope.app), ("env", scope.env)) if v)]
    if on_behalf_of is not None:
        tags.append(f"on-behalf-of:{on_behalf_of}")

    def start() -> JSONResponse:
        handle = submit_run(
            ctx,
            caller.name,
            spec,
            scope,
            params,
            via="cli",
            idempotency_key=idempotency_key,
            tags=tags,
            on_behalf_of=on_behalf_of,
        )
        status, message = start_status(handle)
        body = RunStarted(
            flow_run_id=handle.id,
            name=handle.name,
            ui_url=handle.ui_url,
            status=status,
            msg=message,
            deployment=spec.name,
            app=scope.app,
            env=scope.env,
            requested_by=requested_by,
            submitter=caller.name,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=202)

    return start
