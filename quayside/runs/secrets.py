"""Resolve a ``SecretRef`` from quayside.yaml to its value: an environment variable, a Prefect
Secret block, or a Vault KV path. Values never reach logs or error messages."""

from __future__ import annotations

import os
from typing import Any, cast

from quayside.errors import ConfigError
from quayside.inventory.models import SecretRef


def resolve_secret(ref: SecretRef, *, name: str = "secret") -> str:
    """The value behind ``ref``.

    Raises:
        ConfigError: the variable, block or Vault key does not exist (the message names the
            reference, never a value).
    """
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigError(
                f"{name}: environment variable {ref.env} is not set",
                hint=f"export {ref.env} in the environment of `quayside up`",
            )
        return value
    if ref.prefect_secret is not None:
        from prefect.blocks.system import Secret

        try:
            block = cast(Secret[Any], Secret.load(ref.prefect_secret))
        except ValueError:
            raise ConfigError(
                f"{name}: no Prefect Secret block '{ref.prefect_secret}'",
                hint="create it in the Prefect UI (Blocks → Secret)",
            ) from None
        return str(block.get())
    assert ref.vault is not None
    return _vault(ref.vault, name)


def _vault(reference: str, name: str) -> str:
    import hvac

    path, _, key = reference.partition("#")
    addr = os.environ.get("VAULT_ADDR")
    if not addr:
        raise ConfigError(
            f"{name}: VAULT_ADDR is not set for vault reference '{path}'",
            hint="export VAULT_ADDR (and VAULT_TOKEN) in the environment of `quayside up`",
        )
    client = hvac.Client(url=addr, token=os.environ.get("VAULT_TOKEN"))
    mount, _, rest = path.partition("/")
    rest = rest.removeprefix("data/")
    try:
        data = client.secrets.kv.v2.read_secret_version(
            path=rest, mount_point=mount, raise_on_deleted_version=True
        )
    except Exception as e:
        raise ConfigError(
            f"{name}: cannot read vault path '{path}' ({type(e).__name__})",
            hint="check the path (KV version 2: '<mount>/data/<path>#<key>') and that "
            "VAULT_TOKEN may read it",
        ) from e
    values = data.get("data", {}).get("data", {})
    if key not in values:
        raise ConfigError(
            f"{name}: vault path '{path}' has no key '{key}'",
            hint=f"add the key to the secret, or name an existing one after '#' in {name}",
        )
    return str(values[key])


def secret_value(ref: SecretRef, name: str) -> str:
    """:func:`resolve_secret` in the shape the core's credential readers take
    (:data:`quayside.images.registry_access.SecretValue`)."""
    return resolve_secret(ref, name=name)
