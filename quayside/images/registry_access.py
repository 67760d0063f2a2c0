"""An environment's registry as the registry client and the engine need it: the inventory's
:class:`~quayside.inventory.image_models.RegistryRef` with its password resolved from the
inventory's ``secrets:`` by the resolver the caller passes (the flows pass
:func:`quayside.runs.secrets.resolve_secret`: an environment variable, a Prefect Secret block
or Vault; the core imports no Prefect). The password stays a ``SecretStr``."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from quayside.errors import ConfigError
from quayside.inventory import Inventory
from quayside.inventory.image_models import RegistryRef
from quayside.inventory.models import SecretRef
from quayside.registry import RegistrySettings

#: a secret's value from its reference (``name``: how messages call it, never the value)
SecretValue = Callable[[SecretRef, str], str]


def registry_of(inventory: Inventory, app: str, env: str) -> RegistryRef:
    """The registry of ``app``'s environment ``env``.

    Raises:
        ConfigError: the environment has none (the message has the key path).
    """
    ref = inventory.apps[app].environments[env].registry
    if ref is None:
        raise ConfigError(
            f"quayside.yaml: apps.{app}.environments.{env}.registry: not set; an image app's "
            "environment needs the registry its images are pushed to",
            hint="add registry: {url, repository, username, password_secret} to the environment",
        )
    return ref


def registry_settings(
    inventory: Inventory, app: str, env: str, *, secrets: SecretValue
) -> RegistrySettings:
    """Address and credentials of the registry of ``app``/``env`` (the password by
    ``secrets``).

    Raises:
        ConfigError: no registry, a password secret that is not in ``secrets:``, or a secret
            that does not resolve (named, never its value).
    """
    ref = registry_of(inventory, app, env)
    where = f"apps.{app}.environments.{env}.registry"
    password: SecretStr | None = None
    if ref.password_secret is not None:
        secret = inventory.secrets.get(ref.password_secret)
        if secret is None:
            raise ConfigError(
                f"quayside.yaml: {where}.password_secret: no secret "
                f"'{ref.password_secret}' under secrets:",
                hint=f"add secrets.{ref.password_secret} (env, prefect_secret or vault)",
            )
        password = SecretStr(secrets(secret, f"secrets.{ref.password_secret}"))
    if ref.username is not None and password is None:
        raise ConfigError(
            f"quayside.yaml: {where}: username {ref.username!r} has no password_secret",
            hint="name the secret holding the registry password in password_secret",
        )
    return RegistrySettings(url=ref.url, username=ref.username, password=password)
