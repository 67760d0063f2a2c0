"""Who may read and edit a project's config, with the roles deploys use: a config project is an
app of quayside.yaml (its environments are the app's), so its place is the app in the app's
space. DEVELOPER or higher there may save drafts, restore and set variables; REPORTER or higher
may read. A project that is no app of the inventory belongs to no space: SUPER only.

Publishing is not decided here: it goes through the environment's approval policy in the
publish flow.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.auth.roles import PermissionDenied, Role, effective_role, require_role
from quayside.errors import NotFoundError
from quayside.inventory import Inventory

EDIT_ROLE = Role.DEVELOPER
READ_ROLE = Role.REPORTER


def project_place(inventory: Inventory, project: str) -> tuple[str, str] | None:
    """``(space, project)`` for a project that is an app of the inventory, else None."""
    app = inventory.apps.get(project)
    return None if app is None else (app.space, project)


def check_environment(inventory: Inventory, project: str, environment: str) -> None:
    """Refuse an environment the project's app does not have (a project that is no app of the
    inventory has no environments to check against).

    Raises:
        NotFoundError: naming the environment and the app's environments.
    """
    app = inventory.apps.get(project)
    if app is not None and environment not in app.environments:
        raise NotFoundError(
            f"environment: '{environment}' is not an environment of app '{project}'",
            hint=f"environments of {project}: {', '.join(sorted(app.environments)) or 'none'}",
        )


def _require(
    db: Engine | Session,
    inventory: Inventory,
    user: str,
    project: str,
    minimum: Role,
    verb: str,
    environment: str | None,
) -> Role:
    place = project_place(inventory, project)
    if place is None:
        if effective_role(db, user, "default") is Role.SUPER:
            return Role.SUPER
        raise PermissionDenied(
            f"{user} may not {verb} config of project '{project}': it is no app of "
            "quayside.yaml, so only SUPER users may",
            hint=f"add an app '{project}' (with its space and environments) to quayside.yaml",
        )
    role = require_role(db, user, place[0], place[1], minimum)
    if environment is not None:  # after the role: the hint lists the app's environments
        check_environment(inventory, project, environment)
    return role


def require_editor(
    db: Engine | Session,
    inventory: Inventory,
    user: str,
    project: str,
    environment: str | None = None,
) -> Role:
    """Check that ``user`` may save drafts and variables of ``project`` (DEVELOPER+).

    Raises:
        PermissionDenied: naming the user, the role needed and the project.
        NotFoundError: ``environment`` is not one of the app's.
    """
    return _require(db, inventory, user, project, EDIT_ROLE, "edit", environment)


def require_reader(
    db: Engine | Session,
    inventory: Inventory,
    user: str,
    project: str,
    environment: str | None = None,
) -> Role:
    """Check that ``user`` may read ``project``'s config (REPORTER+).

    Raises:
        PermissionDenied: naming the user, the role needed and the project.
        NotFoundError: ``environment`` is not one of the app's.
    """
    return _require(db, inventory, user, project, READ_ROLE, "read", environment)
