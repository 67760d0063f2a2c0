"""The config pages' cookies: the session id (after login) and the login form's nonce.

Both are ``HttpOnly`` (no script reads them), ``SameSite=Strict`` (no other site makes the
browser send them) and ``Secure`` when the page was served over https (uvicorn reports the
scheme a trusted proxy forwarded), scoped to the pages' path. The session cookie has no
``Max-Age``: it ends with the browser, and the server ends the session sooner.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "quayside_session"
LOGIN_COOKIE = "quayside_login"
PATH = "/config"
LOGIN_COOKIE_MAX_AGE_S = 3600


def served_over_https(request: Request) -> bool:
    """Whether the browser reached the page over https."""
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, session_id: str) -> None:
    """Put the session id in its cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=served_over_https(request),
    )


def set_login_nonce(response: Response, request: Request, nonce: str) -> None:
    """Put the login form's nonce in its cookie."""
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_COOKIE_MAX_AGE_S,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=served_over_https(request),
    )


def clear(response: Response, request: Request, name: str) -> None:
    """Tell the browser to drop cookie ``name``."""
    response.delete_cookie(
        name, path=PATH, httponly=True, samesite="strict", secure=served_over_https(request)
    )
