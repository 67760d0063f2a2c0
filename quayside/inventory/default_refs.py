"""An environment's ``default_ref``: what a deploy without a ref releases (chat's
``deploy web to dev``). A branch name, or ``latest-tag``: the newest tag matching one of the
app's tag rules for that environment (resolved by the gateway in the app's git mirror)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quayside.inventory.models import Inventory

LATEST_TAG = "latest-tag"
"""``default_ref`` meaning the newest tag that matches a tag rule of the environment."""


def default_ref_errors(inventory: Inventory) -> list[str]:
    """``latest-tag`` where the app has no tag rule for the environment (no tag could ever be
    chosen), one ``key.path: problem`` line each."""
    return [
        f"apps.{app_name}.environments.{env_name}.default_ref: {LATEST_TAG} needs a tag rule "
        f"for environment {env_name!r} in apps.{app_name}.tag_rules (or name a branch)"
        for app_name, app in inventory.apps.items()
        for env_name, env in app.environments.items()
        if env.default_ref == LATEST_TAG
        and not any(rule.environment == env_name for rule in app.tag_rules)
    ]
