"""The storage interface of the config center: one Protocol, implemented by the ledger backend
(:mod:`quayside.config.sql_store`) and the Vault KV v2 backend
(:mod:`quayside.config.vault_store`); ``tests/hosts/test_config_store_conformance.py`` runs the
same suite against each.

Backends store and return records; they do not validate content, encrypt or render (that is
:mod:`quayside.config.items` and :mod:`quayside.config.variables`). Every append names the
version it started from (``base_version``; 0 for "there is none yet") and is refused with
:class:`quayside.config.errors.StaleSave` when another save came first, atomically: two
racing saves from the same base never both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.records import ItemVersion, PublishedMarker, VariableKind, VariableVersion


class ConfigStore(Protocol):
    """Versioned config items and variables."""

    encrypts_secrets: bool
    """True when the backend keeps values encrypted itself (Vault): secrets are then stored as
    given; otherwise :mod:`quayside.config.variables` encrypts them before storing."""

    def append_item_version(
        self,
        address: ItemAddress,
        *,
        base_version: int,
        content: str,
        content_hash: str,
        author: str,
        message: str,
        template: bool,
        restored_from: int | None,
        at: datetime,
    ) -> ItemVersion:
        """Save a new version (``base_version + 1``) of the item.

        Raises:
            StaleSave: the latest version is not ``base_version``.
        """
        ...

    def item_versions(self, address: ItemAddress) -> list[ItemVersion]:
        """Every version of the item, oldest first (empty for an unknown item)."""
        ...

    def item_version(self, address: ItemAddress, version: int | None = None) -> ItemVersion:
        """One version (default the latest).

        Raises:
            VersionNotFound: no such item or version.
        """
        ...

    def list_items(self, project: str, environment: str | None = None) -> list[ItemAddress]:
        """The items of a project (or one of its environments), sorted by address."""
        ...

    def published_marker(self, address: ItemAddress) -> PublishedMarker | None:
        """The published marker of the item, or None if it was never published."""
        ...

    def set_published(
        self,
        address: ItemAddress,
        version: int,
        *,
        by: str,
        at: datetime,
        variables: Mapping[str, int] | None = None,
    ) -> None:
        """Move the item's published marker to ``version``, recording the variable versions
        (name -> version) its rendering used (None: not known; readers then take the
        versions current at ``at``).

        Raises:
            VersionNotFound: no such item or version.
        """
        ...

    def append_variable_version(
        self,
        env: EnvAddress,
        name: str,
        *,
        base_version: int,
        stored: str,
        secret: bool,
        kind: VariableKind,
        author: str,
        message: str,
        at: datetime,
    ) -> VariableVersion:
        """Save a new version of a variable.

        Raises:
            StaleSave: the latest version is not ``base_version`` (values masked if secret).
        """
        ...

    def variable_versions(self, env: EnvAddress, name: str) -> list[VariableVersion]:
        """Every version of the variable, oldest first (empty for an unknown one)."""
        ...

    def latest_variables(self, env: EnvAddress) -> list[VariableVersion]:
        """The latest version of every variable of the environment, sorted by name."""
        ...
