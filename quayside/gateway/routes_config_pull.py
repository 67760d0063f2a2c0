"""``GET /api/kerrigan/v1/conf/publish/config/``: the pull endpoint of the older config center,
so the servers' pull scripts (seed 000's ``dns_publish.py``) keep working with only the URL
changed.

The script sends ``project_code``, ``environment``, ``service``, ``filename`` and ``auth_key``
(its long-lived token; here a Quayside API token) as query parameters (the older platform's
docs also show ``auth_key`` as a cookie; a bearer header works too), reads ``code`` and, when
it is 0, writes each ``data`` entry to ``<conf_path><key>``. The answer is therefore
``{"code": 0, "msg": "ok", "data": {"/PROJECT/ENV/SERVICE/FILENAME": "<content>"}}`` with the
*published* version (a template rendered with the variable versions its publish used, not
variables saved since: the pull token sees what the hosts got, secrets included, so give it
only to the hosts). Any failure answers
``code`` = the HTTP status (401 no or bad token, 403 no REPORTER role on the project, 400 bad
parameter, 404 never published), never content. The token is checked before anything else is
looked at; the access log never records the query string.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from quayside.errors import NotFoundError, QuaysideError
from quayside.gateway.auth import authenticate
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import Unauthorized, error_body, status_for

router = APIRouter(tags=["config"])
CtxDep = Annotated[GatewayContext, Depends(context)]
PATH = "/api/kerrigan/v1/conf/publish/config/"


def _token(request: Request, auth_key: str | None) -> str:
    if auth_key:
        return auth_key
    cookie = request.cookies.get("auth_key")
    if cookie:
        return cookie
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    raise Unauthorized(
        "missing token: send auth_key (a Quayside API token)",
        hint="create one with `quayside tokens create USER` for a user with REPORTER on the "
        "project, and put it in the pull script's auth_key",
    )


def _published(ctx: GatewayContext, user: str, params: dict[str, str]) -> dict[str, str]:
    from quayside.config.address import ItemAddress, check_filename, check_name
    from quayside.config.backend import open_reader, open_store
    from quayside.config.permissions import require_reader
    from quayside.config.render import render_published
    from quayside.config.secret_box import SecretBox

    for field in ("project_code", "environment", "service"):
        check_name(field, params[field])
    check_filename(params["filename"])
    address = ItemAddress(
        params["project_code"], params["environment"], params["service"], params["filename"]
    )
    engine = ctx.engine()
    require_reader(engine, ctx.inventory(), user, address.project, address.environment)
    store = open_store(engine)
    box = SecretBox.from_home(ctx.settings.home)
    # the published version with the variable versions its publish rendered, never later ones
    published = render_published(store, address, box=box, reader=open_reader())
    if published is None:
        raise NotFoundError(
            f"{address} has no published version",
            hint="publish it first; drafts are never served",
        )
    return {address.path: published.content}


@router.get(
    PATH,
    summary="Published config file, for the older config center's pull scripts",
    responses={
        401: {"description": "no or bad token (code 401)"},
        403: {"description": "no REPORTER role on the project (code 403)"},
        404: {"description": "never published (code 404)"},
    },
)
def pull_published_config(
    request: Request,
    ctx: CtxDep,
    project_code: Annotated[str, Query(max_length=200)] = "",
    environment: Annotated[str, Query(max_length=200)] = "",
    service: Annotated[str, Query(max_length=200)] = "",
    filename: Annotated[str, Query(max_length=1024)] = "",
    auth_key: Annotated[str | None, Query(max_length=400)] = None,
) -> Any:
    """``{"code": 0, "data": {"/PROJECT/ENV/SERVICE/FILENAME": content}}`` of the published
    version; ``code`` is the HTTP status on any failure."""
    try:
        user, _is_super = authenticate(ctx, _token(request, auth_key))
        request.state.user = user
        data = _published(
            ctx,
            user,
            {
                "project_code": project_code,
                "environment": environment,
                "service": service,
                "filename": filename,
            },
        )
    except QuaysideError as e:
        status = status_for(e)
        body = error_body(request, e.message, e.hint, code=status)
        body["msg"] = e.message  # what the older platform's clients print
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)
    return {"code": 0, "msg": "ok", "data": data}
