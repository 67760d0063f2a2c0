"""Error responses: every failure becomes ``{"error", "hint", "request_id"}`` JSON with a 4xx/5xx
status; validation failures list ``field: problem`` lines; no traceback ever reaches a client.

A body that cannot be parsed is always the client's error (4xx), however it fails: invalid
JSON, bytes that are not UTF-8, or nesting too deep for the parser (``RecursionError``, which
no route can prevent before parsing) -- answered with one line, logged with one line.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from quayside.errors import ConfigError, InputError, LedgerError, NotFoundError, QuaysideError
from quayside.triggers.errors import SignatureError

log = logging.getLogger("quayside.gateway")


class Unauthorized(QuaysideError):
    """The request carries no valid credentials (401)."""


class Forbidden(QuaysideError):
    """The caller is known but may not do this (403)."""


class Conflict(QuaysideError):
    """The target is not in a state that allows this (409)."""


class ServiceUnavailable(QuaysideError):
    """A component the gateway needs is missing or down (503)."""


_STATUS_BY_NAME = {
    "AuthFailed": 401,
    "PermissionDenied": 403,
    "PrefectUnavailable": 503,
    "NotWaitingForApproval": 409,
}


def status_for(error: QuaysideError) -> int:
    """The HTTP status for a Quayside error (by class, most specific first)."""
    for cls in type(error).__mro__:
        if cls.__name__ in _STATUS_BY_NAME:
            return _STATUS_BY_NAME[cls.__name__]
    if isinstance(error, Unauthorized | SignatureError):
        return 401
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, InputError):
        return 400
    if isinstance(error, ServiceUnavailable | LedgerError):
        return 503
    if isinstance(error, ConfigError):
        return 500
    return 500


def error_body(
    request: Request, message: str, hint: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The JSON body of an error response (``code``, when given, is the HTTP status: the older
    task platform's scripts read ``code`` and treat anything but 0 as a failure)."""
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    body.update(extra)
    body["request_id"] = getattr(request.state, "request_id", None)
    return body


def format_problems(error: RequestValidationError) -> list[str]:
    """``field.path: problem`` for each validation error; input values are never echoed."""
    lines: list[str] = []
    for item in error.errors():
        loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
        path = ".".join(loc) or "(body)"
        kind = item.get("type", "")
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "json_invalid":
            message = "the body is not valid JSON"
        else:
            message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return lines


BODY_HINT = "send one JSON object as documented at /docs"
FASTAPI_PARSE_ERROR = "There was an error parsing the body"
"""The detail of FastAPI's 400 when parsing a body raised something else than a JSON error."""


def body_error_message(error: BaseException | None) -> str:
    """What is wrong with a body the parser refused (``error`` is what the parser raised)."""
    if isinstance(error, RecursionError):
        return "the body is not acceptable JSON: nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return "the body is not valid JSON: not UTF-8 text"
    return "the body is not valid JSON"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = format_problems(exc)
        return JSONResponse(
            error_body(
                request, "invalid request: " + "; ".join(problems), problems=problems, code=422
            ),
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message, hint = str(exc.detail), getattr(exc, "hint", None)
        if exc.status_code == 400 and exc.detail == FASTAPI_PARSE_ERROR:
            message, hint = body_error_message(exc.__cause__), BODY_HINT
        return JSONResponse(
            error_body(request, message, hint, code=exc.status_code),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        log.warning(
            "request %s refused: %s",
            getattr(request.state, "request_id", "?"),
            body_error_message(exc),
        )
        return JSONResponse(
            error_body(request, body_error_message(exc), BODY_HINT, code=400), status_code=400
        )

    @app.exception_handler(QuaysideError)
    async def _quayside(request: Request, exc: QuaysideError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.warning(
                "request %s failed: %s: %s",
                getattr(request.state, "request_id", "?"),
                type(exc).__name__,
                exc.message,
            )
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, int):
            headers["Retry-After"] = str(retry_after)
        return JSONResponse(
            error_body(request, exc.message, exc.hint, code=status),
            status_code=status,
            headers=headers,
        )
