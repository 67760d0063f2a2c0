"""Roles, on the model users know from Walle: SUPER > OWNER > MASTER > DEVELOPER > REPORTER.

A user has a role per space, and may have a different one on a project (an app) of that
space: the project grant, when set, overrides the space grant (higher or lower). Users with
``is_super`` are SUPER everywhere; disabled users have no role anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quayside.errors import InputError, QuaysideError
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import users


class PermissionDenied(QuaysideError):
    """The user is known but may not do this here; the message names user, role and place."""


class Role(IntEnum):
    """Ordered roles: compare with ``<``/``>=``."""

    REPORTER = 10
    DEVELOPER = 20
    MASTER = 30
    OWNER = 40
    SUPER = 50

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """``"master"`` / ``"MASTER"`` / ``Role.MASTER`` → ``Role.MASTER``.

        Raises:
            InputError: not a role name.
        """
        if isinstance(value, Role):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            names = ", ".join(r.name for r in cls)
            raise InputError(f"unknown role '{value}' (roles: {names})") from None


def where(space: str, project: str | None) -> str:
    """``space 'ops'`` or ``project 'web' of space 'ops'``, for messages."""
    if project is None:
        return f"space '{space}'"
    return f"project '{project}' of space '{space}'"


def effective_role(
    db: Engine | Session, user: str, space: str, project: str | None = None
) -> Role | None:
    """The role ``user`` has in ``space`` (and ``project``, an app name, if given).

    Args:
        db: ledger Engine or Session.
        user: user name.
        space: space name.
        project: app name, or None for the space itself.

    Returns:
        SUPER for super users; the project grant if there is one; else the space grant; None
        for unknown or disabled users and users without a grant.
    """
    found = users.find_user(db, user)
    if found is None or found.disabled:
        return None
    if found.is_super:
        return Role.SUPER
    space_role, project_role = users.grants_for(db, user, space, project)
    chosen = project_role if project_role is not None else space_role
    return Role.parse(chosen) if chosen is not None else None


def effective_roles(
    db: Engine | Session, user: str, places: Iterable[tuple[str, str | None]]
) -> dict[tuple[str, str | None], Role | None]:
    """:func:`effective_role` at many ``(space, project)`` places, from two reads (the user,
    their grants) however many places: a listing over every app checks them all at once.

    Returns:
        Each place's role, by the same rule (SUPER; the project grant; else the space grant;
        None for unknown or disabled users and places without a grant).
    """
    wanted = list(places)
    found = users.find_user(db, user)
    if found is None or found.disabled:
        return {place: None for place in wanted}
    if found.is_super:
        return {place: Role.SUPER for place in wanted}
    grants = users.grants_by_place(db, user)
    roles: dict[tuple[str, str | None], Role | None] = {}
    for space, project in wanted:
        chosen = grants.get((space, project)) if project is not None else None
        chosen = chosen if chosen is not None else grants.get((space, None))
        roles[(space, project)] = Role.parse(chosen) if chosen is not None else None
    return roles


def require_role(
    db: Engine | Session, user: str, space: str, project: str | None, minimum: Role | str
) -> Role:
    """Check that ``user`` has at least ``minimum`` at this place.

    Args:
        db: ledger Engine or Session.
        user: user name.
        space: space name.
        project: app name or None.
        minimum: the lowest role allowed.

    Returns:
        The user's role there.

    Raises:
        PermissionDenied: naming the user, the role needed and where.
    """
    needed = Role.parse(minimum)
    role = effective_role(db, user, space, project)
    if role is None or role < needed:
        has = role.name if role is not None else "no role"
        raise PermissionDenied(
            f"{user} needs {needed.name} or higher in {where(space, project)} (has {has})",
            hint="an OWNER of the space can grant it: `quayside roles grant USER ROLE --space S`",
        )
    return role


def check_approver(
    db: Engine | Session,
    *,
    approver: str,
    requester: str | None,
    space: str,
    project: str | None,
    policy: ApprovalPolicy,
    excluded: Mapping[str, str] | None = None,
) -> Role:
    """Check that ``approver`` may answer an approval request under ``policy``.

    Args:
        db: ledger Engine or Session.
        approver: who answers.
        requester: who asked for the release.
        space: the app's space.
        project: the app name.
        policy: the environment's approval policy.
        excluded: who else may not answer, user -> why (the rule that excludes them; e.g.
            the editors of the config versions a publish releases), as the request keeps it.

    Returns:
        The approver's role.

    Raises:
        PermissionDenied: a self-approval the policy forbids, an excluded approver, or a
            role below ``policy.role``.
    """
    if not policy.allow_self_approval and requester is not None and approver == requester:
        raise PermissionDenied(
            f"{approver} requested this release and may not approve it "
            f"(policy of {where(space, project)})",
            hint="ask another approver",
        )
    why = (excluded or {}).get(approver)
    if why is not None:
        raise PermissionDenied(
            f"{approver} may not approve this release: {why} (policy of {where(space, project)})",
            hint="ask an approver who did not edit it",
        )
    return require_role(db, approver, space, project, policy.role)
