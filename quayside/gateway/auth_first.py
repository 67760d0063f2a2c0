"""Authenticate before reading the body.

FastAPI reads and parses a route's JSON body -- and validates it into the route's pydantic
model -- before it runs any dependency, the bearer-token check included; an anonymous client
could make the gateway parse anything it liked, and learn from a 400 or 422 what a body
should look like. Routers built with ``route_class=AuthFirstRoute`` check the token first
(the same check, :func:`quayside.gateway.auth.caller_from_request`) in every route that
depends on :func:`quayside.gateway.auth.current_caller`: a request without a valid token is
answered 401 with its body unread.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from quayside.gateway.auth import caller_from_request, current_caller


def needs_caller(dependant: Dependant) -> bool:
    """Whether ``dependant`` (a route or a dependency) depends on ``current_caller``."""
    return any(d.call is current_caller or needs_caller(d) for d in dependant.dependencies)


class AuthFirstRoute(APIRoute):
    """An APIRoute that checks the caller's bearer token before FastAPI reads the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, preceded by the token check when the route needs a caller."""
        handler = super().get_route_handler()
        if not needs_caller(self.dependant):
            return handler

        async def authenticate_then_handle(request: Request) -> Response:
            request.state.caller = await run_in_threadpool(caller_from_request, request)
            return await handler(request)

        return authenticate_then_handle
