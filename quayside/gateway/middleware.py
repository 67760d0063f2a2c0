"""One ASGI middleware around every request: request id, body size limit, access log and the
last-resort error handler (no traceback ever reaches a response).

The access log is one JSON object per line on the ``quayside.gateway.access`` logger: time,
request id, method, path (without the query string, which may carry secrets), status,
duration and the authenticated user (set by the auth dependency in ``request.state.user``).
Tokens and bodies are never logged.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("quayside.gateway.access")
error_log = logging.getLogger("quayside.gateway")


class BodyTooLarge(HTTPException):
    """The request body passed the limit while being read (an HTTPException so that FastAPI's
    body parsing passes it on instead of turning it into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is too large (at most {limit} bytes)")


def json_response_messages(
    status: int, body: dict[str, Any], request_id: str
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
        ],
    }
    return start, {"type": "http.response.body", "body": payload}


class GatewayMiddleware:
    """Request id, body limit, access log and catch-all for the gateway."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        """Wrap ``app``; bodies larger than ``max_body_bytes`` are answered with 413."""
        self.app = app
        self.max_body_bytes = max_body_bytes

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

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if not response_started:
                for message in json_response_messages(
                    413,
                    {
                        "error": "request body is too large",
                        "hint": f"the gateway accepts at most {self.max_body_bytes} bytes",
                        "request_id": request_id,
                    },
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
            _log_access(scope, state, request_id, status["code"] or 500, started)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
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
