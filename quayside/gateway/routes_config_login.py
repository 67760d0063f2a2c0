"""Logging in to the config pages: ``GET/POST /config/login`` exchange a Quayside API token
for a server-side session (:mod:`quayside.gateway.web_sessions`), ``POST /config/logout`` ends
it. The login form is protected by a double-submit nonce (:mod:`quayside.gateway.web_csrf`);
a refused token is answered 401, so the gateway's failed-authentication throttle counts it.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from quayside.gateway.errors import Unauthorized
from quayside.gateway.web_access import (
    PREFIX,
    PageCaller,
    PageRoute,
    gateway_context,
    page_session,
    session_store,
)
from quayside.gateway.web_cookies import LOGIN_COOKIE, SESSION_COOKIE, clear, set_login_nonce
from quayside.gateway.web_cookies import set_session as set_session_cookie
from quayside.gateway.web_csrf import FIELD, check_same_site, check_token, new_login_nonce
from quayside.gateway.web_forms import read_form
from quayside.gateway.web_login import log_in
from quayside.gateway.web_pages import render

router = APIRouter(tags=["config pages"], route_class=PageRoute, include_in_schema=False)
_NEXT_RE = re.compile(r"/config/[A-Za-z0-9._~/@+=&?%-]*")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a page of the config pages, else the tree (never another
    site: ``//host``, schemes and backslashes are refused)."""
    if target and _NEXT_RE.fullmatch(target) and "//" not in target and len(target) <= 2000:
        return target
    return f"{PREFIX}/"


def _login_form(
    request: Request, next_page: str, error: str | None = None, status: int = 200
) -> Response:
    nonce = new_login_nonce()
    response = render(
        "login.html",
        status_code=status,
        title="Log in",
        user=None,
        csrf=None,
        login_csrf=nonce,
        next=safe_next(next_page),
        error=error,
    )
    set_login_nonce(response, request, nonce)
    return response


@router.get(f"{PREFIX}/login")
async def login_page(request: Request) -> Response:
    """The login form (a browser with a live session goes straight on)."""
    next_page = safe_next(request.query_params.get("next"))
    if session_store(request).get(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(next_page, status_code=303)
    return _login_form(request, next_page)


@router.post(f"{PREFIX}/login")
async def login(request: Request) -> Response:
    """Check the token, open a session, set its cookie and go to the page asked for."""
    check_same_site(request)
    form = await read_form(request)
    check_token(request, request.cookies.get(LOGIN_COOKIE), form.text(FIELD))
    next_page = safe_next(form.text("next"))
    store = session_store(request)
    try:
        done = await run_in_threadpool(
            log_in, gateway_context(request).engine(), store, form.text("token")
        )
    except Unauthorized as e:
        return _login_form(request, next_page, error=e.message, status=401)
    store.end(request.cookies.get(SESSION_COOKIE))  # a login never continues an older session
    request.state.user = done.session.user
    response = RedirectResponse(next_page, status_code=303)
    set_session_cookie(response, request, done.session_id)
    clear(response, request, LOGIN_COOKIE)
    return response


@router.post(f"{PREFIX}/logout")
async def logout(request: Request, caller: PageCaller = Depends(page_session)) -> Response:
    """End the session and forget its cookie."""
    form = await read_form(request)
    check_token(request, caller.csrf, form.text(FIELD))
    session_store(request).end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    clear(response, request, SESSION_COOKIE)
    return response
