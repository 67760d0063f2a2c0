"""Who is behind a config-page request, and how a page request that fails is answered.

:func:`page_session` finds the browser's session (and checks its token is still good) before
a route reads anything else, a form body included. :class:`PageRoute` turns every error a
route raises into an HTML page a person can act on: the message and the next step, the status
code of the JSON API (400, 401, 403, 404, 409, 503), and never a traceback; a GET without a
session is sent to the login page instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from quayside.errors import QuaysideError
from quayside.gateway.context import GatewayContext
from quayside.gateway.errors import status_for
from quayside.gateway.web_cookies import SESSION_COOKIE
from quayside.gateway.web_login import LoginNeeded, token_still_good
from quayside.gateway.web_pages import render
from quayside.gateway.web_sessions import SessionStore, WebSession

log = logging.getLogger("quayside.gateway")
PREFIX = "/config"
_STORE_LOCK = threading.Lock()


def session_store(request: Request) -> SessionStore:
    """The app's session store (made on first use)."""
    state = request.app.state
    with _STORE_LOCK:
        store = getattr(state, "config_page_sessions", None)
        if store is None:
            store = SessionStore()
            state.config_page_sessions = store
        return store


def gateway_context(request: Request) -> GatewayContext:
    """The app's :class:`GatewayContext`."""
    ctx: GatewayContext = request.app.state.context
    return ctx


@dataclass(frozen=True)
class PageCaller:
    """The logged-in user of a page request."""

    session: WebSession

    @property
    def user(self) -> str:
        return self.session.user

    @property
    def csrf(self) -> str:
        return self.session.csrf


async def page_session(request: Request) -> PageCaller:
    """The session of ``request``'s cookie, its token checked in the ledger.

    Raises:
        LoginNeeded: no cookie, an unknown or ended session, or a token revoked or expired
            since the login (its sessions are ended).
    """
    store = session_store(request)
    session = store.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginNeeded("you are not logged in, or your session has ended")
    engine = gateway_context(request).engine()
    if not await run_in_threadpool(token_still_good, engine, session.token_id):
        store.end_token(session.token_id)
        raise LoginNeeded(
            "your session has ended: the token you logged in with was revoked or expired, "
            "or your user was disabled"
        )
    request.state.user = session.user
    return PageCaller(session)


def login_redirect(request: Request) -> RedirectResponse:
    """303 to the login page, coming back to this page afterwards."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)


def error_page(request: Request, error: QuaysideError, status: int | None = None) -> Response:
    """The HTML page for ``error``."""
    code = status or status_for(error)
    user = getattr(request.state, "user", None)
    page = render(
        "error.html",
        status_code=code,
        title="Not logged in" if code == 401 else "Refused" if code < 500 else "Not available",
        message=error.message,
        hint=error.hint,
        status=code,
        request_id=getattr(request.state, "request_id", None),
        user=user,
        csrf=None,
    )
    retry_after = getattr(error, "retry_after_s", None)
    if isinstance(retry_after, int):
        page.headers["Retry-After"] = str(retry_after)
    return page


class PageRoute(APIRoute):
    """An APIRoute whose errors are HTML pages (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, with errors answered as pages."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginNeeded as e:
                if request.method in ("GET", "HEAD"):
                    return login_redirect(request)
                return error_page(request, e, 401)
            except QuaysideError as e:
                if status_for(e) >= 500:
                    log.warning(
                        "page %s failed: %s: %s",
                        getattr(request.state, "request_id", "?"),
                        type(e).__name__,
                        e.message,
                    )
                return error_page(request, e)

        return handle
