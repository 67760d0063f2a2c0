"""Which store the settings choose: the ledger (default), or Vault KV v2 with
``QUAYSIDE_CONFIG_BACKEND=vault`` and hvac's usual ``VAULT_ADDR`` / ``VAULT_TOKEN``
(``QUAYSIDE_CONFIG_VAULT_MOUNT``, default ``secret``; ``QUAYSIDE_CONFIG_VAULT_PREFIX``,
default ``quayside``).

Vault references in variables are read with the same ``VAULT_ADDR`` / ``VAULT_TOKEN``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quayside.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from quayside.config.store import ConfigStore
    from quayside.config.vault_refs import VaultReader

BACKEND_ENV = "QUAYSIDE_CONFIG_BACKEND"


def vault_client(environ: Mapping[str, str]) -> Any | None:
    """An hvac client from ``VAULT_ADDR`` / ``VAULT_TOKEN``, or None when no Vault is set."""
    address = environ.get("VAULT_ADDR", "").strip()
    if not address:
        return None
    import hvac

    return hvac.Client(url=address, token=environ.get("VAULT_TOKEN") or None, timeout=10)


def open_store(engine: Engine, environ: Mapping[str, str] | None = None) -> ConfigStore:
    """The config store the environment selects.

    Raises:
        ConfigError: an unknown backend, or Vault selected without ``VAULT_ADDR``.
    """
    env = os.environ if environ is None else environ
    name = env.get(BACKEND_ENV, "ledger").strip() or "ledger"
    if name == "ledger":
        from quayside.config.sql_store import SqlConfigStore

        return SqlConfigStore(engine)
    if name == "vault":
        client = vault_client(env)
        if client is None:
            raise ConfigError(f"{BACKEND_ENV}=vault needs VAULT_ADDR (and VAULT_TOKEN)")
        from quayside.config.vault_store import VaultConfigStore

        return VaultConfigStore(
            client,
            mount=env.get("QUAYSIDE_CONFIG_VAULT_MOUNT", "secret"),
            prefix=env.get("QUAYSIDE_CONFIG_VAULT_PREFIX", "quayside"),
        )
    raise ConfigError(f"{BACKEND_ENV}: unknown backend '{name}' (ledger or vault)")


def open_reader(environ: Mapping[str, str] | None = None) -> VaultReader | None:
    """A reader for variables' Vault references, or None when no Vault is set."""
    client = vault_client(os.environ if environ is None else environ)
    if client is None:
        return None
    from quayside.config.vault_refs import VaultReader

    return VaultReader(client)
