"""Authentication and authorisation for gateway requests, delegated to ``quayside.auth``.

The gateway never checks passwords or roles itself: it takes the bearer token from the
``Authorization`` header, asks :func:`quayside.auth.service.authenticate` who it belongs to and
:func:`quayside.auth.service.require_role` whether that user may act on a space/project. The
service module is imported lazily so that the gateway starts (and answers 503 on protected
routes) on an installation where it is missing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from quayside.gateway.context import GatewayContext, context
from quayside.gateway.errors import ServiceUnavailable, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="A Quayside API token: qs_<id>_<secret>")


def service() -> ModuleType:
    """``quayside.auth.service``.

    Raises:
        ServiceUnavailable: the module is not installed.
    """
    try:
        return importlib.import_module("quayside.auth.service")
    except ImportError as e:
        raise ServiceUnavailable(
            "authentication is not available: quayside.auth.service is missing",
            hint="install a Quayside version with users and tokens",
        ) from e


def role(name: str) -> Any:
    """The ``quayside.auth.roles.Role`` member called ``name`` (REPORTER ... SUPER)."""
    try:
        roles = importlib.import_module("quayside.auth.roles")
    except ImportError as e:
        raise ServiceUnavailable("roles are not available: quayside.auth.roles is missing") from e
    return roles.Role[name]


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the user's name and the token they presented (kept only to
    record an approval decision with it, :func:`quayside.auth.approvals.decide`; it is never
    sent on, to Prefect or anywhere else)."""

    name: str
    is_super: bool
    token: str

    def __repr__(self) -> str:
        return f"Caller(name={self.name!r}, is_super={self.is_super})"


def authenticate(ctx: GatewayContext, token_text: str) -> tuple[str, bool]:
    """Who ``token_text`` belongs to.

    Raises:
        Unauthorized: the token is malformed, unknown, expired or revoked.
    """
    svc = service()
    try:
        user = svc.authenticate(ctx.engine(), token_text)
    except svc.AuthFailed as e:
        raise Unauthorized(
            f"API token not accepted: {getattr(e, 'message', None) or 'invalid token'}",
            hint="create a token with `quayside tokens create` and send "
            "'Authorization: Bearer <token>'",
        ) from None
    except Exception as e:
        if type(e).__name__ == "InputError" or e.__class__.__module__.startswith("quayside.auth"):
            raise Unauthorized("API token not accepted: malformed token") from None
        raise
    return str(user.name), bool(user.is_super)


def caller_from_request(request: Request) -> Caller:
    """The caller behind ``request``'s ``Authorization: Bearer`` header, checked against the
    ledger (blocking: call it in a worker thread). Sets ``request.state.user``.

    Raises:
        Unauthorized: no bearer token, or one that is not accepted.
    """
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing API token", hint="send 'Authorization: Bearer <token>'")
    name, is_super = authenticate(context(request), token)
    request.state.user = name
    return Caller(name=name, is_super=is_super, token=token)


def current_caller(
    request: Request,
    ctx: Annotated[GatewayContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """FastAPI dependency: the authenticated caller (401 without a valid bearer token).

    Routes of an :class:`quayside.gateway.auth_first.AuthFirstRoute` router have checked the
    token before their body was read; the caller found then is used.
    """
    checked = getattr(request.state, "caller", None)
    if isinstance(checked, Caller):
        return checked
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing API token", hint="send 'Authorization: Bearer <token>'")
    name, is_super = authenticate(ctx, credentials.credentials)
    request.state.user = name
    return Caller(name=name, is_super=is_super, token=credentials.credentials)


def require(ctx: GatewayContext, user: str, space: str, project: str | None, minimum: str) -> None:
    """Check that ``user`` has at least role ``minimum`` on ``space``/``project``.

    Raises:
        PermissionDenied: (from the auth service) the user's role is lower; answered with 403.
    """
    service().require_role(ctx.engine(), user, space, project, role(minimum))


CallerDep = Annotated[Caller, Depends(current_caller)]
"""Use as a route parameter type to require a bearer token."""
