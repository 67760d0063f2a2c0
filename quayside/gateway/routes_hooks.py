"""``POST /hooks/gitlab`` (GitLab webhooks) and ``POST /hooks/git`` (the server-side git hook in
``infra/hooks/``): new tags become ``git-deploy`` runs through the app's tag rules."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from quayside.errors import InputError
from quayside.gateway.auth import CallerDep, require
from quayside.gateway.auth_first import AuthFirstRoute
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import Unauthorized, body_error_message
from quayside.gateway.run_starts import slots_of
from quayside.gateway.triggering import (
    Outcome,
    TagTrigger,
    app_for_repo,
    deploy_tag,
    get_app,
    rules_of,
)
from quayside.gateway.webhook_auth import NOT_ACCEPTED, apps_for_token
from quayside.triggers.gitlab import BRANCH_PREFIX, TAG_PREFIX, decide, parse_event
from quayside.triggers.repos import repo_path
from quayside.user_names import UserName

log = logging.getLogger("quayside.gateway")
router = APIRouter(tags=["hooks"], route_class=AuthFirstRoute)

CtxDep = Annotated[GatewayContext, Depends(context)]


def _respond(outcome: Outcome) -> JSONResponse:
    # 202 whenever the trigger has its run: started now, or started by an earlier delivery
    return JSONResponse(outcome.as_dict(), status_code=202 if outcome.flow_run_id else 200)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise InputError(body_error_message(e), hint=GITLAB_BODY_HINT) from None
    if not isinstance(data, dict):
        raise InputError("the body must be a JSON object", hint=GITLAB_BODY_HINT)
    return data


GITLAB_BODY_HINT = "send a GitLab webhook payload (Tag Push, Push or Pipeline Hook)"


def _project_urls(payload: dict[str, Any]) -> list[str | None]:
    urls: list[str | None] = []
    for key in ("project", "repository"):
        part = payload.get(key)
        if isinstance(part, dict):
            for field in ("path_with_namespace", "git_http_url", "git_ssh_url", "url", "web_url"):
                value = part.get(field)
                if isinstance(value, str):
                    urls.append(value)
    return urls


@router.post(
    "/hooks/gitlab",
    summary="GitLab webhook: Tag Push, Push and Pipeline hooks",
    responses={
        200: {"description": "acknowledged; nothing started (the reason is in the body)"},
        202: {
            "description": "a git-deploy run was started, or already existed (status "
            "already_running / already_ran, with its state)"
        },
        401: {"description": "unknown project or wrong X-Gitlab-Token"},
    },
)
async def gitlab_hook(
    request: Request,
    ctx: CtxDep,
    x_gitlab_event: Annotated[str | None, Header()] = None,
    x_gitlab_token: Annotated[str | None, Header()] = None,
    app: Annotated[
        str | None, Query(max_length=64, description="the Quayside app, if not found by repo")
    ] = None,
) -> JSONResponse:
    """Verify a GitLab delivery with the app's ``X-Gitlab-Token`` (constant time) and deploy a
    new tag that matches one of the app's tag rules. Duplicate deliveries start one run.

    The token is checked before the body is read (:mod:`quayside.gateway.webhook_auth`): a
    delivery without a valid one is refused whatever its body."""

    def check_token() -> frozenset[str]:
        return apps_for_token(ctx.inventory(), app, x_gitlab_token)

    matching = await run_in_threadpool(check_token)
    payload = _json_object(await request.body())
    planned = await run_in_threadpool(_plan_gitlab, ctx, payload, x_gitlab_event, matching, app)
    if isinstance(planned, Outcome):  # nothing to start: answered without a turn
        return _respond(planned)
    # after every check: a forged, foreign or ignored delivery never queues for a turn
    async with slots_of(request).slot(deadline=False):
        outcome = await run_in_threadpool(deploy_tag, ctx, planned)
    return _respond(outcome)


def _plan_gitlab(
    ctx: GatewayContext,
    payload: dict[str, Any],
    event_header: str | None,
    matching: frozenset[str],
    app_name: str | None,
) -> TagTrigger | Outcome:
    """The delivery's app checked against its token and its event against the app's tag
    rules: the tag to deploy, or the Outcome of an ignored delivery.

    Raises:
        Unauthorized: the delivery's project is not an app its token is for.
    """
    inventory = ctx.inventory()
    name = app_name if app_name else app_for_repo(inventory, _project_urls(payload))
    app = inventory.apps.get(name) if name else None
    if name is None or app is None or name not in matching:
        log.warning("gitlab hook: the delivery's project is not an app its token is for")
        raise Unauthorized(NOT_ACCEPTED)
    event = parse_event(payload, event_header)
    decision = decide(event, rules_of(name, app), app=name)
    if not decision.deploy:
        log.info("gitlab hook for %s ignored: %s", name, decision.reason)
        return Outcome(
            status="ignored", reason=decision.reason, message=f"ignored: {decision.reason}"
        )
    assert decision.ref is not None and decision.commit is not None
    return TagTrigger(
        app=name,
        repo=decision.repo or name,
        tag=decision.ref,
        commit=decision.commit,
        user=decision.user,
        via="gitlab",
    )


class GitPush(BaseModel):
    """A new ref reported by the server-side git hook (``infra/hooks/post-receive``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    app: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", description="the Quayside app")
    ref: str = Field(min_length=1, max_length=255, description="the tag: 'refs/tags/v1' or 'v1'")
    commit: str = Field(pattern=r"^[0-9a-fA-F]{40}([0-9a-fA-F]{24})?$", description="commit SHA")
    pusher: UserName | None = Field(
        default=None,
        description="who pushed (GL_USERNAME), recorded as a run tag for information; the "
        "release's requester is the token's user. Letters, digits, '.', '_', '-', '@'",
    )
    repo: str | None = Field(
        default=None,
        max_length=255,
        description="project path (GitLab's GL_PROJECT_PATH) for de-duplication with webhooks",
    )


@router.post(
    "/hooks/git",
    summary="Server-side git hook: a new tag was pushed",
    responses={
        200: {"description": "acknowledged; nothing started (the reason is in the body)"},
        202: {
            "description": "a git-deploy run was started, or already existed (status "
            "already_running / already_ran, with its state)"
        },
    },
)
async def git_hook(request: Request, push: GitPush, caller: CallerDep, ctx: CtxDep) -> JSONResponse:
    """Deploy a tag reported by ``infra/hooks/post-receive``, authenticated with an API token
    of a user who is DEVELOPER (or more) on the app's space. Same tag rules and de-duplication
    as ``/hooks/gitlab``. A push that deploys waits for its turn as long as it takes."""
    inventory = await run_in_threadpool(ctx.inventory)
    app = get_app(inventory, push.app)
    await run_in_threadpool(require, ctx, caller.name, app.space, push.app, "DEVELOPER")
    if push.ref.startswith(BRANCH_PREFIX):
        reason = "branch pushes do not deploy"
        return _respond(Outcome(status="ignored", reason=reason, message=f"ignored: {reason}"))
    trigger = TagTrigger(
        app=push.app,
        repo=push.repo or (repo_path(app.repo) if app.repo else push.app),
        tag=push.ref.removeprefix(TAG_PREFIX),
        commit=push.commit.lower(),
        user=caller.name,  # the token's user asks; the pusher is information
        via="git-hook",
        reported_by=push.pusher,
    )
    async with slots_of(request).slot(deadline=False):
        outcome = await run_in_threadpool(deploy_tag, ctx, trigger)
    return _respond(outcome)
