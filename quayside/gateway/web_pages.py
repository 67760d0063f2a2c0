"""Rendering the config pages: one Jinja2 environment over the package's
``templates/config`` with autoescape on for every template (file content, names and messages
are always escaped), and the headers every page is sent with.

The pages need no script: the Content-Security-Policy allows none, styles only from the
gateway itself, forms only to the gateway, and no framing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The pages' template environment (autoescape on for every template)."""
    return Environment(
        loader=PackageLoader("quayside.gateway", "templates/config"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Template ``name`` filled with ``values``, with :data:`SECURITY_HEADERS`."""
    html = environment().get_template(name).render(**values)
    return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))
