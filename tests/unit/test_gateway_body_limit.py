"""The gateway's body limit: the config center's pages accept whole files (form-encoded),
every other path keeps the gateway's own limit."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from quayside.gateway.middleware import CONFIG_PAGE_MAX_BODY, GatewayMiddleware


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def post(path: str, size: int) -> httpx.Response:
    app = GatewayMiddleware(echo_length, max_body_bytes=64 * 1024)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.post(path, content=b"x" * size)

    return asyncio.run(go())


def test_a_config_page_takes_a_whole_file_and_other_paths_keep_the_limit() -> None:
    assert post("/config/edit/shop/prod/dns/hosts", 1_500_000).text == "1500000"
    refused = post("/api/tasks", 100 * 1024)
    assert refused.status_code == 413 and "too large" in refused.json()["error"]


def test_a_config_page_body_past_its_own_limit_is_413() -> None:
    refused = post("/config/edit/shop/prod/dns/hosts", CONFIG_PAGE_MAX_BODY + 1)
    assert refused.status_code == 413
    assert f"at most {CONFIG_PAGE_MAX_BODY} bytes" in refused.json()["error"]
