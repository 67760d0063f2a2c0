"""Retry, inside the Prefect server, an API request that SQLite refused as busy.

On its embedded SQLite database the Prefect server (3.8) answers a request whose transaction
hit "database is locked" with ``503 {"exception_message": "Service Unavailable"}``, and
Prefect's client then waits about 2 s before trying again (``2 ** 1`` s of exponential backoff;
there is no setting for the base). Measured here: the first flow run created right after a
release with 20 per-host tasks got that 503 from ``POST /api/flow_runs/`` in 3 runs out of
3 - the server's task-run recorder was writing the previous run's task states - and started
2.0 to 2.7 s late instead of 0.2 s (upstream: PrefectHQ/prefect#18934). A write transaction
that began as a reader is refused at once in WAL mode, without waiting for the busy timeout.

:class:`BusyRetry` wraps the server's ASGI app: it keeps the request body (small JSON; larger
bodies pass through untouched), and when the answer is exactly that retryable 503 it runs the
request again, 50 ms apart, for up to 1.5 s (30 tries; 8 tries were not always enough right
after a release) before letting the 503 through. The failed attempt's transaction was rolled
back, so this is the retry the client would make itself, only sooner; after the last attempt
the client's own backoff still applies. Measured with it, the same first flow run after a
release started 0.6 to 0.8 s after it was called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: the body of the Prefect server's answer to a retryable database error
RETRYABLE_BODY = {"exception_message": "Service Unavailable"}
#: requests with a larger body (or none declared while one may follow) are not kept
MAX_KEPT_BODY = 4 * 1024 * 1024
_BODYLESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class BusyRetry:
    """ASGI middleware: run an HTTP request again when the app answers with the retryable
    503, at most ``attempts`` times in all, ``pause_s`` apart.

    Args:
        app: the wrapped ASGI app (the Prefect server's).
        attempts: tries in all before the 503 goes to the client.
        pause_s: pause between tries.
    """

    def __init__(self, app: ASGIApp, *, attempts: int = 30, pause_s: float = 0.05) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.app = app
        self.attempts = attempts
        self.pause_s = pause_s
        self.retried = 0  # requests answered by their second or a later attempt (tests read it)

    def __getattr__(self, name: str) -> Any:
        # the wrapped app's attributes (FastAPI's state, routes...) stay reachable
        if name == "app":
            raise AttributeError(name)
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await _keep_body(scope, receive)
        except _Disconnected:
            return  # the client is gone before its request was read: nobody to answer
        if body is None:
            await self.app(scope, receive, send)
            return
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            answer = _Answer(send, hold_503=not last)
            try:
                # a copy each time: routers write into the scope (Starlette's Mount does)
                await self.app(dict(scope), _replay(body, receive), answer.send)
            except Exception:
                if not answer.retryable():
                    await answer.release()
                    raise
            else:
                if not answer.retryable():
                    await answer.release()
                    if attempt > 1:
                        self.retried += 1
                    return
            await asyncio.sleep(self.pause_s)


class _Disconnected(Exception):
    """The client went away while its request body was being read."""


async def _keep_body(scope: Scope, receive: Receive) -> bytes | None:
    """The whole request body, or None when it is not worth keeping (too large, or of
    unknown length on a method that has one); nothing is read then.

    Raises:
        _Disconnected: the client disconnected before the body was complete.
    """
    headers = dict(scope.get("headers") or [])
    declared = headers.get(b"content-length")
    if declared is None:
        if str(scope.get("method", "")).upper() not in _BODYLESS:
            return None
    elif not declared.isdigit() or int(declared) > MAX_KEPT_BODY:
        return None
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then waits on the real one (disconnects)."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


class _Answer:
    """The app's answer to one attempt: passed straight on, except a 503 (when holding),
    which is held back until it is known whether it is the retryable one."""

    def __init__(self, send: Send, *, hold_503: bool) -> None:
        self._send = send
        self._hold_503 = hold_503
        self._held: list[Message] = []
        self._holding = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and self._hold_503:
            self._holding = message.get("status") == 503
        if self._holding:
            self._held.append(message)
        else:
            await self._send(message)

    def retryable(self) -> bool:
        if not self._holding:
            return False
        body = b"".join(m.get("body", b"") for m in self._held[1:])
        try:
            return bool(json.loads(body) == RETRYABLE_BODY)
        except ValueError:
            return False

    async def release(self) -> None:
        """Send what was held (a 503 that is not the retryable one)."""
        for message in self._held:
            await self._send(message)
        self._held.clear()
