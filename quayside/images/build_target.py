"""What an image build of ``app`` in ``env`` needs from the inventory: the app's image
settings and the environment's registry. A build runs on the worker's engine, so unlike a
release it needs no hosts in the environment."""

from __future__ import annotations

from quayside.errors import ConfigError, NotFoundError
from quayside.inventory import Inventory
from quayside.inventory.image_models import AppImage
from quayside.inventory.models import App


def build_target(inventory: Inventory, app: str, env: str) -> tuple[App, AppImage]:
    """The app and its image settings, for a build in ``env``.

    Raises:
        NotFoundError: unknown app or environment (naming those that exist).
        ConfigError: the app is not released as an image (no ``image:``).
    """
    if app not in inventory.apps:
        known = ", ".join(sorted(inventory.apps)) or "none defined"
        raise NotFoundError(f"unknown app '{app}' (apps: {known})")
    config = inventory.apps[app]
    if env not in config.environments:
        known = ", ".join(sorted(config.environments))
        raise NotFoundError(
            f"app '{app}' has no environment '{env}' (environments: {known})",
            hint="build in the environment whose registry receives new images (env=...)",
        )
    if config.image is None:
        raise ConfigError(
            f"quayside.yaml: apps.{app}.image: not set; {app} is not released as an image",
            hint="add image: {build: {dockerfile: Dockerfile}} to the app, or deploy it with "
            "git-deploy",
        )
    return config, config.image
