"""Encryption of secret variables in the ledger: Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``, which Prefect already installs) with one key in the data directory.

The key file ``QUAYSIDE_HOME/config-secrets.key`` is created on first use with mode 0600 (by
``os.open`` with ``O_EXCL``, so two processes starting together cannot both write one) and
refused if other users can read it. Without it the stored secrets cannot be read: back it up
with the ledger, separately from it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from quayside.config.errors import ConfigCenterError

KEY_FILE = "config-secrets.key"
PREFIX = "fernet:"


class SecretKeyError(ConfigCenterError):
    """The key file is missing, unreadable, too open, or not the key the value was sealed
    with."""


def _read_key(path: Path) -> bytes:
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretKeyError(
            f"{path} has mode {mode:04o}: other users could read the config secrets key",
            hint=f"chmod 600 {path}",
        )
    key = path.read_bytes().strip()
    if not key:
        raise SecretKeyError(f"{path} is empty", hint="restore the key file from your backup")
    return key


def load_or_create_key(home: Path) -> bytes:
    """The key in ``home``, created (0600) if there is none yet.

    Raises:
        SecretKeyError: the file is group/world accessible or empty.
    """
    from cryptography.fernet import Fernet

    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
    return _read_key(path)


class SecretBox:
    """Seals and opens secret values with the data directory's key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)

    @classmethod
    def from_home(cls, home: Path) -> SecretBox:
        """The box for the data directory ``home`` (creating its key on first use)."""
        return cls(load_or_create_key(home))

    def __repr__(self) -> str:
        return "SecretBox(••••)"

    def seal(self, value: str) -> str:
        """``fernet:<token>`` for ``value``."""
        return PREFIX + self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, stored: str, *, what: str) -> str:
        """The value sealed in ``stored``.

        Raises:
            SecretKeyError: not sealed, or sealed with another key; names ``what``, never the
                value.
        """
        from cryptography.fernet import InvalidToken

        if not stored.startswith(PREFIX):
            raise SecretKeyError(f"{what}: the stored secret is not sealed")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise SecretKeyError(
                f"{what}: cannot decrypt the stored secret with this data directory's key",
                hint=f"the key is {KEY_FILE} in the QUAYSIDE_HOME that sealed it",
            ) from None
