"""The first step of every release run: the settings and inventory it reads, who it runs for
(:func:`~quayside.tasks.run_authority.confirm_run_authority`, before anything is recorded or
touched) and the target it acts on - the preamble each release flow body shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quayside.inventory import load_inventory
from quayside.inventory.models import Inventory
from quayside.inventory.resolve import Target, resolve_target
from quayside.settings import Settings, load_settings
from quayside.tasks.run_authority import confirm_run_authority


@dataclass(frozen=True)
class ResolvedRelease:
    """What a release run resolved before planning.

    Attributes:
        settings: the platform's settings.
        inventory: quayside.yaml as loaded now (again on every resume).
        requested_by: who the run is recorded as requested by (the authenticated submitter
            of a trigger's run, else the parameter).
        target: the app/env (and hosts) it releases to; None for a run without one (a
            host-group run, an image build).
    """

    settings: Settings
    inventory: Inventory
    requested_by: str
    target: Target | None

    @property
    def must_target(self) -> Target:
        """:attr:`target`, for a run resolved with one."""
        assert self.target is not None, "resolved without a target"
        return self.target


def resolve_release(
    scope: Mapping[str, Any], requested_by: str, *, target: bool = True
) -> ResolvedRelease:
    """Load settings and inventory, confirm the submitter may still start this run, and
    resolve the target.

    Args:
        scope: the run parameters that say what it acts on, as the submission recorded them
            (``app``, ``env``, ``hosts``; or ``group``).
        requested_by: the ``requested_by`` parameter.
        target: resolve ``scope``'s app/env (and ``hosts``) to a :class:`Target` (refusing
            unknown apps, environments and hosts before anything is recorded).

    Raises:
        quayside.auth.run_start.RunNotAuthorized: the submitter lost the right.
        quayside.errors.NotFoundError: unknown app, environment or host.
    """
    settings = load_settings()
    inventory = load_inventory(settings.inventory_path)
    who = confirm_run_authority(inventory, scope, requested_by)
    resolved = (
        resolve_target(inventory, scope["app"], scope["env"], scope.get("hosts"))
        if target
        else None
    )
    return ResolvedRelease(settings, inventory, who, resolved)
