"""``GET /api/releases``: the ledger's releases, newest first, for scripts and dashboards.

A caller sees the releases of the apps they hold a role on: REPORTER or higher on the app's
project (the rule chat's status command and the config pages read with), every app for a
SUPER. The page is one SQL statement (:func:`quayside.gateway.release_rows.release_page`),
so a dashboard polling it during a burst of releases costs the ledger one indexed read.
Query parameters are checked here, each refusal a 400 naming the parameter: FastAPI's own
validation would answer 422 with a generic message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from quayside.auth.roles import Role, effective_roles
from quayside.errors import InputError, NotFoundError
from quayside.gateway.auth import Caller, CallerDep, require
from quayside.gateway.auth_first import AuthFirstRoute
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.release_rows import ReleaseRow, release_page
from quayside.ledger.db import read_scope
from quayside.ledger.models import ReleaseStatus

router = APIRouter(tags=["releases"], route_class=AuthFirstRoute)

CtxDep = Annotated[GatewayContext, Depends(context)]

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
PARAMETERS = ("app", "env", "status", "limit", "before")
READ_ROLE = "REPORTER"


class ReleaseItem(BaseModel):
    """One release of the ledger."""

    id: int
    app: str
    env: str
    kind: str = Field(description="deploy, rollback, image, image-build, image-promote, config, …")
    version: str | None = Field(description="the release's label (tag or version)")
    ref: str | None = Field(description="the git ref asked for")
    commit_sha: str | None
    status: str = Field(description="pending, awaiting_approval, running, succeeded, failed, …")
    requested_by: str | None
    approved_by: list[str] = Field(description="users whose approvals let it run")
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    hosts: dict[str, int] = Field(description="host outcome -> number of hosts")
    flow_run_id: str | None
    run_url: str | None = Field(description="the run's page in the Prefect UI")


class ReleaseList(BaseModel):
    """A page of releases, newest first."""

    releases: list[ReleaseItem]
    next_before: int | None = Field(
        description="pass as `before` for the next (older) page; null on the last page"
    )


def _int(name: str, text: str | None, low: int, high: int) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{name}: {text[:40]!r} is not a whole number") from None
    if not low <= value <= high:
        raise InputError(f"{name}: must be between {low} and {high}, not {value}")
    return value


def _status(text: str | None) -> ReleaseStatus | None:
    if text is None:
        return None
    try:
        return ReleaseStatus(text)
    except ValueError:
        names = ", ".join(s.value for s in ReleaseStatus)
        raise InputError(f"status: unknown release status {text[:40]!r}", hint=names) from None


def _refuse_unknown(request: Request) -> None:
    unknown = sorted(set(request.query_params) - set(PARAMETERS))
    if unknown:
        raise InputError(
            f"{', '.join(n[:40] for n in unknown)}: unknown query parameter",
            hint=f"GET /api/releases takes {', '.join(PARAMETERS)}",
        )


def _readable_apps(ctx: GatewayContext, caller: Caller, app: str | None) -> list[str] | None:
    """The apps whose releases ``caller`` may see (None: every app, for a SUPER); with
    ``app``, that app or a refusal.

    Raises:
        NotFoundError: ``app`` is no app of the inventory.
        PermissionDenied: no REPORTER role on ``app``'s project (403).
    """
    inventory = ctx.inventory()
    if app is not None:
        found = inventory.apps.get(app)
        if found is None:
            raise NotFoundError(
                f"app: no app {app[:64]!r} in the inventory",
                hint="the apps are those of quayside.yaml (`quayside check` lists problems)",
            )
        if not caller.is_super:
            require(ctx, caller.name, found.space, app, READ_ROLE)
        return [app]
    if caller.is_super:
        return None
    apps = sorted(inventory.apps.items())
    with read_scope(ctx.engine()) as session:
        roles = effective_roles(session, caller.name, [(spec.space, name) for name, spec in apps])
    return [
        name
        for name, spec in apps
        if (role := roles[(spec.space, name)]) is not None and role >= Role[READ_ROLE]
    ]


def _item(row: ReleaseRow, run_url_prefix: str) -> ReleaseItem:
    return ReleaseItem(
        id=row.id,
        app=row.app,
        env=row.env,
        kind=row.kind,
        version=row.version,
        ref=row.ref,
        commit_sha=row.commit_sha,
        status=row.status,
        requested_by=row.requested_by,
        approved_by=list(row.approved_by),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        hosts=row.host_outcomes,
        flow_run_id=row.flow_run_id,
        run_url=run_url_prefix + row.flow_run_id if row.flow_run_id else None,
    )


@router.get(
    "/api/releases",
    summary="List releases, newest first",
    response_model=ReleaseList,
    responses={
        400: {"description": "a bad query parameter (named)"},
        401: {"description": "no or bad token"},
        403: {"description": "no REPORTER role on the app asked for"},
        404: {"description": "the app (or its environment) is not in the inventory"},
    },
)
def list_releases(
    request: Request,
    caller: CallerDep,
    ctx: CtxDep,
    app: Annotated[str | None, Query(max_length=200, description="only this app")] = None,
    env: Annotated[str | None, Query(max_length=200, description="only this environment")] = None,
    status: Annotated[str | None, Query(max_length=40, description="only this status")] = None,
    limit: Annotated[
        str | None, Query(max_length=12, description=f"1-{MAX_LIMIT}, default {DEFAULT_LIMIT}")
    ] = None,
    before: Annotated[
        str | None, Query(max_length=20, description="only releases older than this id")
    ] = None,
) -> ReleaseList:
    """The releases of the apps the token's user may see (REPORTER or higher on the app's
    project; SUPER: all, including apps no longer in the inventory), newest first, with each
    one's per-host outcome counts, approvers and Prefect run. Page with ``before``: the
    answer's ``next_before`` is the last id of this page.
    """
    _refuse_unknown(request)
    size = _int("limit", limit, 1, MAX_LIMIT) or DEFAULT_LIMIT
    older_than = _int("before", before, 1, 2**63 - 1)
    wanted = _status(status)
    apps = _readable_apps(ctx, caller, app)  # 404 / 403 before the app's environments show
    if app is not None and env is not None:
        environments = sorted(ctx.inventory().apps[app].environments)
        if env not in environments:
            raise NotFoundError(
                f"env: {env[:64]!r} is not an environment of app {app!r}",
                hint=f"environments of {app}: {', '.join(environments)}",
            )
    rows = release_page(
        ctx.engine(), apps=apps, env=env, status=wanted, before=older_than, limit=size
    )
    from quayside.runs import ui_url_for

    prefix = ui_url_for("")  # the UI's address is the same for every run of the page
    return ReleaseList(
        releases=[_item(row, prefix) for row in rows],
        next_before=rows[-1].id if len(rows) == size else None,
    )
