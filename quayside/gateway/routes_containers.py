"""An image app's containers through the gateway, for the app's users: list them, read the
serving container's last log lines, restart it - what ``quayside ps/logs/restart`` do, with
the same rights (the token's user needs image-release's role on the app's environment)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse

from quayside.gateway.auth import CallerDep
from quayside.gateway.context import GatewayContext, context
from quayside.inventory.resolve import Target

router = APIRouter(tags=["containers"])
CtxDep = Annotated[GatewayContext, Depends(context)]
PREFIX = "/api/apps/{app}/{env}"


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
    summary="The serving container's last log lines, per host",
    response_class=PlainTextResponse,
)
def container_logs(
    app: str,
    env: str,
    caller: CallerDep,
    ctx: CtxDep,
    tail: Annotated[int, Query(ge=0, le=10_000)] = 100,
) -> PlainTextResponse:
    """Each line prefixed with its host (``web-1: ...``)."""
    from quayside.images.containers_ops import serving_logs

    logs = serving_logs(_target(ctx, caller.name, app, env), tail)
    lines = [f"{host}: {line}" for host, text in logs.items() for line in text.splitlines()]
    return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""))


@router.post(PREFIX + "/restart", summary="Restart the serving container, host after host")
def restart_containers(app: str, env: str, caller: CallerDep, ctx: CtxDep) -> dict[str, Any]:
    """``{"ok": bool, "hosts": {host: {ok, container, message}}}``; each host is probed
    before the next one restarts."""
    from quayside.images.containers_ops import restart_serving

    hosts = restart_serving(_target(ctx, caller.name, app, env))
    return {"ok": all(h["ok"] for h in hosts.values()), "hosts": hosts}
