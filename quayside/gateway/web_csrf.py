"""Cross-site request forgery checks for the config pages' forms.

Every form carries a CSRF token, checked on every POST with a constant-time comparison:

- after login, the session's own token (:attr:`WebSession.csrf`);
- on the login form, where no session exists yet, a random nonce that is also set as a
  ``SameSite=Strict`` cookie when the form is shown (a double submit: another site can neither
  read the cookie nor make the browser send it).

A POST whose ``Origin`` header names another host than the one it was sent to, or that the
browser marks ``Sec-Fetch-Site: cross-site``, is refused before the token is looked at.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

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


def _host_port(netloc: str) -> tuple[str, int | None]:
    parts = urlsplit(f"//{netloc.strip()}")
    try:
        port = parts.port
    except ValueError:
        port = -1  # never equal to a real port
    return (parts.hostname or "").lower(), port


def same_host(origin: str, host_header: str) -> bool:
    """Whether ``origin`` (an ``Origin`` header) names the host the request was sent to.

    The scheme is not compared: behind a TLS-terminating proxy the gateway sees http while the
    browser says https. Ports are compared when both sides name one.
    """
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return False
    origin_host, origin_port = _host_port(parts.netloc)
    host, port = _host_port(host_header)
    if not host or origin_host != host:
        return False
    return origin_port is None or port is None or origin_port == port


def check_same_site(request: Request) -> None:
    """Refuse a request another site made the browser send.

    Raises:
        CsrfRefused: ``Origin`` names another host, or ``Sec-Fetch-Site`` says cross-site.
    """
    origin = request.headers.get("origin")
    if origin is not None and not same_host(origin, request.headers.get("host", "")):
        raise CsrfRefused(
            "form refused: it was sent from another site",
            hint="open the page from the gateway's own address; behind a reverse proxy, pass "
            "the Host header on (nginx: proxy_set_header Host $http_host)",
        )
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
