"""What ``quayside config publish PROJECT ENV [SERVICE]`` asks for, checked against
quayside.yaml before any run exists: the project, its environment, the service (the only one
there when none is named) and a canary smaller than the fleet. Every refusal is one line
naming the thing and the next step; nothing is created."""

from __future__ import annotations

from dataclasses import dataclass

from quayside.errors import InputError, NotFoundError
from quayside.inventory.models import Inventory
from quayside.inventory.resolve import resolve_target

CHECK_HINT = "see what quayside.yaml defines: `quayside check`"


@dataclass(frozen=True)
class PublishTarget:
    """A checked publish request: the service and how many hosts it reaches."""

    project: str
    env: str
    service: str
    hosts: int


def publish_target(
    inventory: Inventory, project: str, env: str, service: str | None, canary: int | None
) -> PublishTarget:
    """Check a publish of ``project``/``env`` (``service``, or the environment's only one).

    Raises:
        NotFoundError: unknown project, environment or service, naming those that exist.
        InputError: no service named where the environment has several, or a canary of
            none or all of the hosts.
    """
    app = inventory.apps.get(project)
    if app is None:
        known = ", ".join(sorted(inventory.apps)) or "none"
        raise NotFoundError(f"unknown project '{project}' (projects: {known})", hint=CHECK_HINT)
    environment = app.environments.get(env)
    if environment is None:
        known = ", ".join(sorted(app.environments)) or "none"
        raise NotFoundError(
            f"project '{project}' has no environment '{env}' (environments: {known})",
            hint=CHECK_HINT,
        )
    services = sorted(environment.config)
    where = f"apps.{project}.environments.{env}.config"
    if not services:
        raise NotFoundError(
            f"{project}/{env} publishes no config service",
            hint=f"add {where}.SERVICE to quayside.yaml (docs/config-publish.md)",
        )
    if service is None:
        if len(services) > 1:
            raise InputError(
                f"{project}/{env} publishes {len(services)} services ({', '.join(services)}): "
                "name one",
                hint=f"quayside config publish {project} {env} {services[0]}",
            )
        service = services[0]
    elif service not in environment.config:
        raise NotFoundError(
            f"{project}/{env} publishes no config service '{service}' "
            f"(services: {', '.join(services)})",
            hint=f"add {where}.{service} to quayside.yaml, or publish one of those",
        )
    hosts = len(resolve_target(inventory, project, env).hosts)
    if canary is not None and not 0 < canary < hosts:
        fits = f"give 1 to {hosts - 1}" if hosts > 1 else "publish without --canary"
        raise InputError(
            f"--canary {canary}: {project}/{env} has {hosts} host(s); {fits}",
            hint="a canary publish goes to some of the hosts first, then to the rest",
        )
    return PublishTarget(project, env, service, hosts)
