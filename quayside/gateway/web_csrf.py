"""Cross-site request forgery checks for the config pages' forms.

Every form carries a CSRF token, checked on every POST with a constant-time comparison:

- after login, the session's own token (:attr:`WebSession.csrf`);
- on the login form, where no session exists yet, a random nonce that is also set as a
  ``SameSite=Strict`` cookie when the form is shown (a double submit: another site can neither
  read the cookie nor make the browser send it).

A POST whose ``Origin`` header names another origin, or that the browser marks
``Sec-Fetch-Site: cross-site``, is refused before the token is looked at.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

from quayside.gateway.errors import Forbidden

FIELD = "csrf_token"
"""The form field every form carries."""
LOGIN_NONCE_BYTES = 32


class CsrfRefused(Forbidden):
    """A form post without the right CSRF token, or from another site (403)."""

    hint = "reload the page and submit the form again; forms expire when you log out"


def new_login_nonce() -> str:
    """A fresh nonce for the login form (and its cookie)."""
    return secrets.token_urlsafe(LOGIN_NONCE_BYTES)


def tokens_match(expected: str | None, submitted: str | None) -> bool:
    """Whether ``submitted`` equals ``expected`` (both non-empty), in constant time."""
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), submitted.encode("utf-8", "replace"))


def own_origin(request: Request) -> str:
    """``scheme://host[:port]`` as the browser addressed this gateway."""
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def check_same_site(request: Request) -> None:
    """Refuse a request another site made the browser send.

    Raises:
        CsrfRefused: ``Origin`` names another origin, or ``Sec-Fetch-Site`` says cross-site.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(request):
        raise CsrfRefused("form refused: it was sent from another site")
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise CsrfRefused("form refused: it was sent from another site")


def check_token(request: Request, expected: str | None, submitted: str | None) -> None:
    """Check a POST: same site, and the form's CSRF token equals ``expected``.

    Raises:
        CsrfRefused: either check fails.
    """
    check_same_site(request)
    if not tokens_match(expected, submitted):
        raise CsrfRefused("form refused: its CSRF token is missing or out of date")
