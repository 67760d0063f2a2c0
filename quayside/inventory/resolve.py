"""Questions asked of a validated inventory: which hosts an environment or group means."""

from __future__ import annotations

from dataclasses import dataclass

from quayside.errors import NotFoundError
from quayside.inventory.models import App, Environment, Host, Inventory


@dataclass(frozen=True)
class Target:
    """One app+environment, resolved: its settings and its hosts in a stable order."""

    app_name: str
    env_name: str
    app: App
    env: Environment
    hosts: tuple[tuple[str, Host], ...]

    @property
    def deploy_root(self) -> str:
        return self.env.deploy_root or self.app.deploy_root

    @property
    def host_names(self) -> list[str]:
        return [name for name, _ in self.hosts]


def group_hosts(inventory: Inventory, group: str) -> list[str]:
    """Host names of ``group`` (or the single host of that name).

    Raises:
        NotFoundError: no such group or host.
    """
    if group in inventory.groups:
        return list(inventory.groups[group])
    if group in inventory.hosts:
        return [group]
    known = ", ".join(sorted(inventory.groups)) or "none defined"
    raise NotFoundError(
        f"unknown host group '{group}' (groups: {known})",
        hint="add it under groups: in quayside.yaml and run `quayside check`",
    )


def hosts_of(inventory: Inventory, names: list[str]) -> tuple[tuple[str, Host], ...]:
    out: list[tuple[str, Host]] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        if name not in inventory.hosts:
            raise NotFoundError(f"unknown host '{name}'", hint="check hosts: in quayside.yaml")
        seen.add(name)
        out.append((name, inventory.hosts[name]))
    return tuple(out)


def app_of(inventory: Inventory, app: str, env: str) -> App:
    """The app ``app``, once ``env`` is known to be one of its environments.

    Raises:
        NotFoundError: unknown app or environment, naming what exists.
    """
    if app not in inventory.apps:
        known = ", ".join(sorted(inventory.apps)) or "none defined"
        raise NotFoundError(f"unknown app '{app}' (apps: {known})")
    app_cfg = inventory.apps[app]
    if env not in app_cfg.environments:
        known = ", ".join(sorted(app_cfg.environments))
        raise NotFoundError(f"app '{app}' has no environment '{env}' (environments: {known})")
    return app_cfg


def resolve_target(
    inventory: Inventory, app: str, env: str, only_hosts: list[str] | None = None
) -> Target:
    """Resolve ``app``/``env`` (optionally limited to ``only_hosts``) to a Target.

    Raises:
        NotFoundError: unknown app, environment or host, naming what exists.
    """
    app_cfg = app_of(inventory, app, env)
    env_cfg = app_cfg.environments[env]
    names = list(env_cfg.hosts)
    for group in env_cfg.groups:
        names.extend(group_hosts(inventory, group))
    hosts = hosts_of(inventory, names)
    if only_hosts:
        wanted = set(only_hosts)
        unknown = wanted - {n for n, _ in hosts}
        if unknown:
            raise NotFoundError(
                f"host(s) {', '.join(sorted(unknown))} are not in {app}/{env}",
                hint=f"hosts of {app}/{env}: {', '.join(n for n, _ in hosts)}",
            )
        hosts = tuple(h for h in hosts if h[0] in wanted)
    if not hosts:
        raise NotFoundError(f"{app}/{env} has no hosts", hint="add hosts or groups to it")
    return Target(app, env, app_cfg, env_cfg, hosts)
