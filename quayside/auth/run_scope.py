"""What a run will touch, and whether a user may start it.

Every trigger path (task API, chat, hooks, CLI) and every run at its start asks the same
question: may this user start a run of this deployment with these parameters? The answer is
computed from what the run will act on, never from a label the caller chose:

- ``app-env`` deployments (git deploy, rollback; image promote: its ``to_env``) act on one
  app's environment: the user needs the deployment's minimum role on the app (its project in
  its space), and a ``hosts`` subset must be hosts of that environment.
- ``host-group`` deployments (an arbitrary command on a group of hosts) act on hosts: the
  user needs the minimum role in *every* space that owns one of the hosts (a space owns the
  hosts its apps' environments use); a host no app uses belongs to no space, and only a
  SUPER user may act on it.

No Prefect import: the gateway, the CLI and the flows share this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.auth.roles import PermissionDenied, Role, effective_role, require_role
from quayside.errors import InputError, NotFoundError
from quayside.inventory import Inventory
from quayside.inventory.resolve import group_hosts, resolve_target

ScopeKind = Literal["app-env", "host-group", "none"]


@dataclass(frozen=True)
class RunScope:
    """The places a run acts on.

    Attributes:
        deployment: the catalogue name.
        minimum_role: the lowest role allowed to start it (on every place).
        places: ``(space, project)`` pairs the user needs the role on (project None: the
            whole space); empty with ``unowned_hosts`` means SUPER only.
        hosts: the hosts the run will act on, in order.
        unowned_hosts: hosts no app of the inventory uses (only SUPER may act on them).
        app: the app, for app-env runs.
        env: the environment, for app-env runs.
    """

    deployment: str
    minimum_role: Role
    places: tuple[tuple[str, str | None], ...]
    hosts: tuple[str, ...]
    unowned_hosts: tuple[str, ...] = ()
    app: str | None = None
    env: str | None = None


def host_owners(inventory: Inventory) -> dict[str, set[str]]:
    """For every host, the spaces whose apps use it in some environment."""
    owners: dict[str, set[str]] = {name: set() for name in inventory.hosts}
    for app_name, app in inventory.apps.items():
        for env_name in app.environments:
            for host in resolve_target(inventory, app_name, env_name).host_names:
                owners.setdefault(host, set()).add(app.space)
    return owners


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise InputError(f"{name}: required, a non-empty string")
    return value


def _host_list(params: Mapping[str, Any]) -> list[str] | None:
    value = params.get("hosts")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise InputError("hosts: must be a list of host names")
    return list(value)


def scope_of_run(
    inventory: Inventory,
    *,
    deployment: str,
    kind: ScopeKind,
    minimum_role: str,
    params: Mapping[str, Any],
) -> RunScope:
    """The places a run of ``deployment`` with ``params`` acts on.

    Args:
        inventory: the validated inventory.
        deployment: catalogue name (for messages).
        kind: the deployment's scope kind (from the catalogue).
        minimum_role: the deployment's minimum role to start (from the catalogue).
        params: the run's parameters, as they will be passed to the flow.

    Returns:
        The RunScope.

    Raises:
        InputError: a parameter the scope needs is missing or malformed.
        NotFoundError: unknown app, environment, group or host; a host outside the
            environment.
    """
    role = Role.parse(minimum_role)
    if kind == "app-env":
        # a promotion acts on the environment it promotes to (``to_env``)
        env_key = "to_env" if "env" not in params and "to_env" in params else "env"
        app, env = _text(params, "app"), _text(params, env_key)
        target = resolve_target(inventory, app, env)
        wanted = _host_list(params)
        if wanted is not None:
            outside = [h for h in wanted if h not in target.host_names]
            if outside:
                raise NotFoundError(
                    f"hosts: {', '.join(sorted(set(outside)))[:200]} not in {app}/{env}",
                    hint=f"hosts of {app}/{env}: {', '.join(target.host_names)}",
                )
        hosts = tuple(wanted) if wanted is not None else tuple(target.host_names)
        return RunScope(deployment, role, ((target.app.space, app),), hosts, app=app, env=env)
    if kind == "host-group":
        group = _text(params, "group")
        hosts = tuple(group_hosts(inventory, group))
        owners = host_owners(inventory)
        spaces = sorted({space for h in hosts for space in owners.get(h, set())})
        unowned = tuple(h for h in hosts if not owners.get(h))
        return RunScope(
            deployment, role, tuple((s, None) for s in spaces), hosts, unowned_hosts=unowned
        )
    return RunScope(deployment, Role.SUPER, (), ())


def authorize_run(db: Engine | Session, user: str, scope: RunScope) -> None:
    """Check that ``user`` may start a run acting on ``scope``.

    Raises:
        PermissionDenied: naming the role needed and the first place it is missing; a run on
            hosts no app uses, or of a deployment without a scope, needs SUPER.
    """
    if scope.unowned_hosts or not scope.places:
        _require_super(db, user, scope)
        return
    for space, project in scope.places:
        require_role(db, user, space, project, scope.minimum_role)


def _require_super(db: Engine | Session, user: str, scope: RunScope) -> None:
    if effective_role(db, user, "default") is Role.SUPER:
        return
    what = (
        f"on host(s) {', '.join(scope.unowned_hosts)[:200]} that no app uses"
        if scope.unowned_hosts
        else "(it names no app or hosts a role could be checked on)"
    )
    raise PermissionDenied(
        f"{user} needs SUPER to start {scope.deployment} {what}",
        hint="ask a SUPER user to run it, or add the hosts to an app's environment",
    )
