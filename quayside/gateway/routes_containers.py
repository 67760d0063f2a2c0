"""An image app's containers through the gateway, for the app's users: list them, read the
serving container's last log lines, restart it - what ``quayside ps/logs/restart`` do, with
the same rights (the token's user needs image-release's role on the app's environment)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from quayside.gateway.auth import CallerDep
from quayside.gateway.context import GatewayContext, context
from quayside.inventory.resolve import Target

if TYPE_CHECKING:
    from quayside.images.containers_logs import LogPump

router = APIRouter(tags=["containers"])
CtxDep = Annotated[GatewayContext, Depends(context)]
PREFIX = "/api/apps/{app}/{env}"
END = "end"
"""What ``next`` gives once every host's log stream ended."""


def _target(ctx: GatewayContext, user: str, app: str, env: str) -> Target:
    """APP/ENV, after checking ``user`` may release it (404 unknown, 403 no role)."""
    from quayside.auth.run_scope import authorize_run, scope_of_run
    from quayside.deployments.catalogue import by_name
    from quayside.inventory.resolve import resolve_target

    inventory = ctx.inventory()
    target = resolve_target(inventory, app, env)
    spec = by_name("image-release")
    scope = scope_of_run(
        inventory, deployment=spec.name, kind="app-env", minimum_role=spec.minimum_role,
        params={"app": app, "env": env},
    )  # fmt: skip
    authorize_run(ctx.engine(), user, scope)
    return target


@router.get(PREFIX + "/containers", summary="The app's containers on every Docker host")
def list_containers(app: str, env: str, caller: CallerDep, ctx: CtxDep) -> dict[str, Any]:
    """``{"containers": [{host, name, version, digest, config_version, status, health,
    serving}]}``; ``serving`` marks the container nginx sends traffic to."""
    from quayside.images.containers_ops import container_rows

    return {"containers": container_rows(_target(ctx, caller.name, app, env))}


@router.get(
    PREFIX + "/logs",
    summary="The serving container's last log lines, per host (follow=true: and what follows)",
    response_class=PlainTextResponse,
)
def container_logs(
    app: str,
    env: str,
    caller: CallerDep,
    ctx: CtxDep,
    request: Request,
    tail: Annotated[int, Query(ge=0, le=10_000)] = 100,
    follow: bool = False,
) -> Response:
    """Each line prefixed with its host (``web-1: ...``). With ``follow=true`` the response
    streams: the last ``tail`` lines, then every line as the containers print it, until they
    stop or the client goes away (``quayside logs --follow``'s stream)."""
    from quayside.images.containers_logs import LogPump

    pump = LogPump(_target(ctx, caller.name, app, env), tail=tail, follow=follow)
    pump.__enter__()  # an engine that does not answer is an error response, not a stream
    if not follow:
        try:
            lines = [line.shown() for line in pump.lines(wake_s=5) if line is not None]
        finally:
            pump.close()
        return PlainTextResponse("".join(f"{line}\n" for line in lines))
    return _ClosingStream(
        _follow(pump, request), pump.close, media_type="text/plain; charset=utf-8"
    )


class _ClosingStream(StreamingResponse):
    """A stream that runs ``closer`` however it ends: also when the client left before the
    body started (Starlette then never starts the generator, so its ``finally`` never runs,
    and the pump's threads and engine connections would outlive the request)."""

    def __init__(self, content: Any, closer: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._closer = closer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._closer()  # LogPump.close may be called twice


async def _follow(pump: LogPump, request: Request) -> AsyncIterator[str]:
    """The lines of ``pump`` as they come; checks every second whether the client is still
    there (a quiet container writes nothing that would fail), and closes the pump - the
    engine streams - either way."""
    from starlette.concurrency import run_in_threadpool

    from quayside.images.containers_logs import LogLine

    lines = pump.lines(wake_s=1.0)
    try:
        while True:
            line = await run_in_threadpool(next, lines, END)
            if isinstance(line, LogLine):
                yield f"{line.shown()}\n"
            elif line is END:
                return
            elif await request.is_disconnected():
                return
    finally:
        pump.close()


@router.post(PREFIX + "/restart", summary="Restart the serving container, host after host")
def restart_containers(app: str, env: str, caller: CallerDep, ctx: CtxDep) -> dict[str, Any]:
    """``{"ok": bool, "hosts": {host: {ok, container, message}}}``; each host is probed
    before the next one restarts."""
    from quayside.images.containers_ops import restart_serving

    hosts = restart_serving(_target(ctx, caller.name, app, env))
    return {"ok": all(h["ok"] for h in hosts.values()), "hosts": hosts}
