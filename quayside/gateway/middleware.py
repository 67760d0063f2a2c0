"""One ASGI middleware around every request: request id, failed-authentication throttle, body
size limit and read deadline, access log and the last-resort error handler (no traceback ever
reaches a response).

The access log is one JSON object per line on the ``quayside.gateway.access`` logger: time,
request id, method, path (without the query string, which may carry secrets), status,
duration and the authenticated user (set by the auth dependency in ``request.state.user``).
It is the gateway's only access log (uvicorn's is off, see :mod:`quayside.gateway.server`).
Tokens, other headers, query strings and bodies are never logged.

A client over the failure limit of :mod:`quayside.gateway.throttle` gets 429 before its
request reaches a route; every 401 counts as a failure. A body must arrive whole within the
read deadline (408 otherwise), and a response sent before the body was read to its end
closes the connection, so a client trickling a body cannot keep a connection either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quayside.gateway.throttle import FailureThrottle, client_keys

access_log = logging.getLogger("quayside.gateway.access")
error_log = logging.getLogger("quayside.gateway")


class BodyTooLarge(HTTPException):
    """The request body passed the limit while being read (an HTTPException so that FastAPI's
    body parsing passes it on instead of turning it into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is too large (at most {limit} bytes)")
        self.hint = f"the gateway accepts at most {limit} bytes"


class BodyTimeout(HTTPException):
    """The request body did not arrive whole within the read deadline (408; an HTTPException
    for the same reason as :class:`BodyTooLarge`)."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(
            408,
            f"the request body did not arrive within {deadline_s:g} s",
            headers={"Connection": "close"},
        )
        self.hint = "send the whole body at once; the gateway does not wait for slow uploads"


def json_response_messages(
    status: int, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> tuple[Message, Message]:
    """The two ASGI messages of a small JSON response."""
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode()),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ],
    }
    return start, {"type": "http.response.body", "body": payload}


CONFIG_PAGES = "/config/"
CONFIG_PAGE_MAX_BODY = 3 * 1024 * 1024
"""The config center's pages post whole files (up to the core's 1 MiB limit), form-encoded:
up to about three times their size. Other paths keep the gateway's limit."""

UNTHROTTLED_PATHS = frozenset({"/health"})
"""Answered even for a throttled client: the supervisor's liveness probe comes from 127.0.0.1."""


class GatewayMiddleware:
    """Request id, throttle, body limit and deadline, access log and catch-all."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout_s: float = 10.0,
        throttle: FailureThrottle | None = None,
    ) -> None:
        """Wrap ``app``: bodies larger than ``max_body_bytes`` are answered with 413, bodies
        not read whole within ``body_timeout_s`` with 408, and clients over ``throttle``'s
        failure limit with 429."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call (non-HTTP scopes pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 0}
        response_started = False
        declared = _content_length(scope)
        body_pending = (declared or 0) > 0 or _header(scope, b"transfer-encoding") is not None

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                if body_pending and not any(name == b"connection" for name, _ in headers):
                    headers.append((b"connection", b"close"))  # the rest of the body is unread
                message = {**message, "headers": headers}
            await send(message)

        limit = self.max_body_bytes
        if str(scope.get("path", "")).startswith(CONFIG_PAGES):
            limit = max(limit, CONFIG_PAGE_MAX_BODY)
        received = 0
        loop = asyncio.get_running_loop()
        deadline: float | None = None

        async def receive_wrapper() -> Message:
            nonlocal received, deadline, body_pending
            if not body_pending:
                return await receive()  # after the body: only http.disconnect, no deadline
            if deadline is None:
                deadline = loop.time() + self.body_timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise BodyTimeout(self.body_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_pending = bool(message.get("more_body", False))
            else:
                body_pending = False
            return message

        keys = client_keys(scope) if self.throttle is not None else []
        try:
            blocked = None
            if self.throttle is not None and scope.get("path") not in UNTHROTTLED_PATHS:
                blocked = self.throttle.blocked(keys)
            if blocked is not None:
                for message in json_response_messages(
                    429,
                    {
                        "error": f"too many failed authentications {blocked.describe()}: "
                        f"try again in {blocked.retry_after_s} s",
                        "hint": "check the token or secret you send; requests are refused "
                        "unchecked until then",
                        "request_id": request_id,
                    },
                    request_id,
                    {"Retry-After": str(blocked.retry_after_s)},
                ):
                    await send_wrapper(message)
                return
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            await self.app(scope, receive_wrapper, send_wrapper)
        except (BodyTooLarge, BodyTimeout) as e:
            if not response_started:
                for message in json_response_messages(
                    e.status_code,
                    {"error": e.detail, "hint": e.hint, "request_id": request_id},
                    request_id,
                ):
                    await send_wrapper(message)
        except Exception:
            error_log.exception("unhandled error in request %s", request_id)
            if not response_started:
                for message in json_response_messages(
                    500,
                    {
                        "error": "internal error",
                        "hint": "the gateway log has the details under this request id",
                        "request_id": request_id,
                    },
                    request_id,
                ):
                    await send_wrapper(message)
        finally:
            if self.throttle is not None and status["code"] == 401:
                self.throttle.record_failure(keys)
            _log_access(scope, state, request_id, status["code"] or 500, started)


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _log_access(
    scope: Scope, state: dict[str, Any], request_id: str, status: int, started: float
) -> None:
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "request_id": request_id,
        "method": scope.get("method"),
        "path": scope.get("path"),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "user": state.get("user"),
    }
    access_log.info(json.dumps(record, ensure_ascii=False))
