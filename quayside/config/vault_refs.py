"""Variables that point at a secret in HashiCorp Vault's KV v2 engine: ``mount/path#key`` (the
inventory's ``secret/data/app#token`` form is accepted too: a ``data/`` after the mount is the
API's, not the secret's path).

The value is read when a template is rendered, never stored by Quayside; a path or key that
does not exist is an error naming it (and never the value of anything).
"""

from __future__ import annotations

from typing import Any

from quayside.config.errors import UnknownVaultPath, VaultUnavailable
from quayside.errors import InputError


def parse_reference(reference: str) -> tuple[str, str, str]:
    """``secret/data/app/db#password`` → ``("secret", "app/db", "password")``.

    Raises:
        InputError: not ``mount/path#key``.
    """
    path, sep, key = reference.partition("#") if isinstance(reference, str) else ("", "", "")
    mount, slash, rest = path.partition("/")
    if rest.startswith("data/"):
        rest = rest[len("data/") :]
    if not sep or not key or not slash or not mount or not rest or "\x00" in reference:
        raise InputError(
            f"vault reference {reference!r}: expected MOUNT/PATH#KEY, e.g. secret/app/db#password"
        )
    return mount, rest, key


class VaultReader:
    """Reads referenced values through an hvac client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, reference: str, *, what: str) -> str:
        """The value at ``reference``.

        Args:
            what: the variable asking, for messages.

        Raises:
            UnknownVaultPath: no such path, or no such key in it (named).
            VaultUnavailable: Vault refused or could not be reached.
        """
        import hvac.exceptions

        mount, path, key = parse_reference(reference)
        try:
            answer = self.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            raise UnknownVaultPath(
                f"{what}: Vault path {mount}/{path} does not exist (KV v2 mount '{mount}')",
                hint="write the secret in Vault first, or fix the reference with "
                "`quayside vars set --vault`",
            ) from None
        except hvac.exceptions.Forbidden:
            raise VaultUnavailable(f"{what}: Vault refused to read {mount}/{path}") from None
        except hvac.exceptions.VaultError as e:
            raise VaultUnavailable(f"{what}: Vault error reading {mount}/{path}: {e}") from None
        except OSError as e:
            raise VaultUnavailable(f"{what}: cannot reach Vault: {e}") from None
        data = (answer.get("data") or {}).get("data") or {}
        if key not in data:
            raise UnknownVaultPath(
                f"{what}: Vault path {mount}/{path} has no key '{key}'",
                hint=f"keys there: {', '.join(sorted(data)) or 'none'}",
            )
        return str(data[key])
