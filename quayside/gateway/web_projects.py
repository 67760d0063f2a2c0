"""What a page user may see and do: the config projects (apps of quayside.yaml) they may read,
and for each whether they may edit, decided by :mod:`quayside.config.permissions` alone (the
same rule as the CLI and the pull endpoint). Blocking: the ledger is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from quayside.auth.roles import PermissionDenied
from quayside.config import permissions
from quayside.gateway.context import GatewayContext


@dataclass(frozen=True)
class ProjectAccess:
    """A project the user may read; ``can_edit``: they may also save, restore and publish."""

    name: str
    environments: tuple[str, ...]
    can_edit: bool


def can_edit(ctx: GatewayContext, user: str, project: str, environment: str | None) -> bool:
    """Whether ``user`` may edit ``project`` (DEVELOPER+); they may read it (checked before)."""
    try:
        permissions.require_editor(ctx.engine(), ctx.inventory(), user, project, environment)
    except PermissionDenied:
        return False
    return True


def require_reader(ctx: GatewayContext, user: str, project: str, environment: str) -> bool:
    """Check that ``user`` may read ``project``/``environment``; whether they may also edit.

    Raises:
        PermissionDenied: no REPORTER role on the project (403).
        NotFoundError: not an environment of the project's app (404).
    """
    permissions.require_reader(ctx.engine(), ctx.inventory(), user, project, environment)
    return can_edit(ctx, user, project, environment)


def require_editor(ctx: GatewayContext, user: str, project: str, environment: str) -> None:
    """Check that ``user`` may edit ``project``/``environment`` (a REPORTER is refused, 403).

    Raises:
        PermissionDenied: no DEVELOPER role on the project.
        NotFoundError: not an environment of the project's app.
    """
    permissions.require_editor(ctx.engine(), ctx.inventory(), user, project, environment)


def readable_projects(ctx: GatewayContext, user: str) -> list[ProjectAccess]:
    """The apps of the inventory whose config ``user`` may read, by name."""
    out = []
    inventory = ctx.inventory()
    for name, app in sorted(inventory.apps.items()):
        try:
            permissions.require_reader(ctx.engine(), inventory, user, name)
        except PermissionDenied:
            continue
        out.append(
            ProjectAccess(name, tuple(sorted(app.environments)), can_edit(ctx, user, name, None))
        )
    return out
