"""How ``python -m quayside.gateway`` serves the app: uvicorn with its access log off (the
gateway writes its own, without query strings: :mod:`quayside.gateway.middleware`), a short
keep-alive, a bound on the size of request heads and a deadline for them.

uvicorn has no deadline for a request head: a client that connects and sends its headers a
byte at a time keeps the connection for as long as it likes. :func:`header_deadline_protocol`
is uvicorn's h11 protocol with one: from the moment a connection opens (or a new request on
it starts to arrive) its head must be complete within the deadline, else the connection is
answered 408 and closed. The body has its own deadline, in the middleware.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from quayside.gateway.config import GatewayConfig
from quayside.settings import Settings

MAX_HEAD_BYTES = 16 * 1024
"""Largest request head (request line and headers) h11 accepts; larger ones get 400."""

_HEAD_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 48\r\n"
    b"\r\n"
    b"the request headers did not arrive in time; bye\n"
)


def header_deadline_protocol(timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing connections whose request head takes longer than
    ``timeout_s`` seconds to arrive."""

    class HeaderDeadlineProtocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._arm()  # a request head is (still) on its way
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_deadline is None:
                self._head_deadline = self.loop.call_later(timeout_s, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_timed_out(self) -> None:
            self._head_deadline = None
            if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
                return
            if self.conn.trailing_data[0]:  # part of a head arrived: say why we hang up
                self.transport.write(_HEAD_TIMEOUT_RESPONSE)
            self.transport.close()

    return HeaderDeadlineProtocol


def uvicorn_config(app: FastAPI, settings: Settings, config: GatewayConfig) -> uvicorn.Config:
    """The uvicorn configuration the gateway process runs with.

    Args:
        app: the gateway app (:func:`quayside.gateway.app.create_app`).
        settings: where to listen (``gateway_host``, ``gateway_port``).
        config: the timeouts (``header_timeout_s``, ``keep_alive_s``) and the reverse
            proxies to trust.

    Returns:
        A :class:`uvicorn.Config`: uvicorn's access log off, h11 with the head deadline,
        ``X-Forwarded-For`` honoured only from ``config.trusted_proxies`` (uvicorn trusts
        127.0.0.1 by default: any local process could pick the client address the throttle
        counts against).
    """
    return uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="info",
        access_log=False,
        http=header_deadline_protocol(config.header_timeout_s),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=config.keep_alive_s,
        server_header=False,
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=list(config.trusted_proxies),
    )
