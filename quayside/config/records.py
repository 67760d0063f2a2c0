"""The records every backend returns: one saved version of an item or a variable, and an
item's published marker. Plain frozen dataclasses, so callers never hold a database row.

A variable's stored value may be a secret (plaintext in the Vault backend, ciphertext in the
ledger): its ``repr`` never shows it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from quayside.config.address import EnvAddress, ItemAddress

VariableKind = Literal["value", "vault-ref"]


def content_hash(content: str) -> str:
    """SHA-256 (hex) of ``content`` encoded as UTF-8."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ItemVersion:
    """One saved version of a config item."""

    address: ItemAddress
    version: int
    content: str = field(repr=False)
    content_hash: str
    author: str
    message: str
    created_at: datetime
    template: bool = False
    restored_from: int | None = None


@dataclass(frozen=True)
class PublishedMarker:
    """Which version of an item was last published, when and by whom, and the variable
    versions its rendering used."""

    version: int
    at: datetime
    by: str
    variables: dict[str, int] | None = None
    """name -> version of every variable the published rendering used (empty for a file that
    is not a template or uses none); None for a marker moved before markers kept them (the
    ledger before migration 0010, a Vault item's older custom_metadata): readers then take the
    versions current at ``at`` (:func:`quayside.config.variables.versions_at`)."""


@dataclass(frozen=True)
class VariableVersion:
    """One saved value of a variable.

    ``stored`` is what the backend holds: the value, ciphertext (``fernet:…``) for a secret
    in a backend that does not encrypt, or a Vault reference (``kind == "vault-ref"``). Read
    values through :mod:`quayside.config.variables`, which decrypts and masks.
    """

    env: EnvAddress
    name: str
    version: int
    stored: str = field(repr=False)
    secret: bool
    kind: VariableKind
    author: str
    message: str
    created_at: datetime
