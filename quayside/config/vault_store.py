"""HashiCorp Vault KV v2 backend (through hvac), mapped onto the same interface as the ledger.

Layout under a KV v2 mount (default ``secret``) and a prefix (default ``quayside``):

- an item is the secret ``PREFIX/items/PROJECT/ENV/SERVICE/FILENAME``; each saved version is a
  KV version (the numbers are Vault's), its data ``{content, content_hash, author, message,
  template, restored_from, at}``;
- the published marker is the item's ``custom_metadata`` (``published_version``,
  ``published_by``, ``published_at``, and ``published_variables``: the variable versions the
  published rendering used as a JSON object string), so it moves without making a version.
  Vault takes at most 64 custom_metadata keys of string values of 1 to 512 bytes
  (vault-plugin-secrets-kv ``validateCustomMetadata``), so a longer JSON string continues in
  ``published_variables_2``, ``published_variables_3``, …;
- a variable is ``PREFIX/vars/PROJECT/ENV/NAME`` with data ``{value, secret, kind, author,
  message, at}``; Vault encrypts at rest, so secrets are stored as given.

A save names its base version as KV v2's check-and-set (``options.cas``; 0 = "must not exist
yet"), so Vault itself refuses a stale save atomically. Vault keeps ``max_versions`` versions
per key (10 by default): the first save of a key sets :data:`VERSIONS_KEPT`, and a mount
configured lower still caps history (API: /:secret-mount-path/config).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.errors import VaultUnavailable, VersionNotFound
from quayside.config.records import ItemVersion, PublishedMarker, VariableKind, VariableVersion
from quayside.config.stale import stale_item, stale_variable

VERSIONS_KEPT = 1_000_000
CAS_MISMATCH = "check-and-set parameter did not match the current version"
VARIABLES_KEY = "published_variables"
MAX_CUSTOM_KEYS = 64
MAX_CUSTOM_VALUE_BYTES = 512
"""Vault's limits on custom_metadata (vault-plugin-secrets-kv, path_metadata.go)."""


def _variable_chunks(variables: Mapping[str, int]) -> dict[str, str]:
    """The variable versions as a JSON object string, cut into custom_metadata values of at
    most :data:`MAX_CUSTOM_VALUE_BYTES` (ASCII JSON: one byte a character)."""
    text = json.dumps(dict(sorted(variables.items())), separators=(",", ":"))
    parts = [
        text[i : i + MAX_CUSTOM_VALUE_BYTES] for i in range(0, len(text), MAX_CUSTOM_VALUE_BYTES)
    ]
    return {VARIABLES_KEY if n == 1 else f"{VARIABLES_KEY}_{n}": part
            for n, part in enumerate(parts, start=1)}  # fmt: skip


def _read_variables(custom: Mapping[str, str]) -> dict[str, int] | None:
    """The variable versions :func:`_variable_chunks` wrote, or None for a marker written
    before markers kept them."""
    if VARIABLES_KEY not in custom:
        return None
    text, n = custom[VARIABLES_KEY], 2
    while f"{VARIABLES_KEY}_{n}" in custom:
        text += custom[f"{VARIABLES_KEY}_{n}"]
        n += 1
    return {str(k): int(v) for k, v in json.loads(text).items()}


def _parse_time(text: str) -> datetime:
    """Vault's RFC 3339 times carry nanoseconds; Python takes microseconds."""
    text = text.strip().removesuffix("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class VaultConfigStore:
    """Config items and variables in a Vault KV v2 mount."""

    encrypts_secrets = True

    def __init__(self, client: Any, *, mount: str = "secret", prefix: str = "quayside") -> None:
        self.client = client
        self.mount = mount
        self.prefix = prefix.strip("/")

    def __repr__(self) -> str:
        return f"VaultConfigStore(mount={self.mount!r}, prefix={self.prefix!r})"

    @property
    def _kv(self) -> Any:
        return self.client.secrets.kv.v2

    def _item_path(self, address: ItemAddress) -> str:
        return f"{self.prefix}/items/{address}"

    def _variable_path(self, env: EnvAddress, name: str) -> str:
        return f"{self.prefix}/vars/{env}/{name}"

    # low level -----------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import hvac.exceptions

        try:
            return fn(*args, **kwargs)
        except hvac.exceptions.InvalidPath:
            return None
        except hvac.exceptions.Forbidden:
            raise VaultUnavailable(f"Vault refused {what} (permission denied)") from None
        except hvac.exceptions.InvalidRequest:
            raise
        except hvac.exceptions.VaultError as e:
            raise VaultUnavailable(f"Vault error on {what}: {e}") from None
        except OSError as e:
            raise VaultUnavailable(f"cannot reach Vault for {what}: {e}") from None

    def _metadata(self, path: str) -> dict[str, Any] | None:
        answer = self._call(
            f"reading metadata of {self.mount}/{path}",
            self._kv.read_secret_metadata,
            path=path,
            mount_point=self.mount,
        )
        return None if answer is None else dict(answer["data"])

    def _read(self, path: str, version: int | None) -> dict[str, Any] | None:
        answer = self._call(
            f"reading {self.mount}/{path}",
            self._kv.read_secret_version,
            path=path,
            version=version,
            mount_point=self.mount,
            raise_on_deleted_version=True,
        )
        return None if answer is None else dict(answer["data"])

    def _live_versions(self, path: str) -> list[int]:
        metadata = self._metadata(path)
        if metadata is None:
            return []
        versions = metadata.get("versions") or {}
        return sorted(
            int(n)
            for n, v in versions.items()
            if not v.get("destroyed") and not (v.get("deletion_time") or "")
        )

    def _latest_number(self, path: str) -> int:
        metadata = self._metadata(path)
        return 0 if metadata is None else int(metadata.get("current_version") or 0)

    def _write(self, path: str, data: dict[str, Any], base_version: int) -> int | None:
        """Write a version with check-and-set; its number, or None when the base is stale."""
        import hvac.exceptions

        try:
            answer = self._call(
                f"writing {self.mount}/{path}",
                self._kv.create_or_update_secret,
                path=path,
                secret=data,
                cas=base_version,
                mount_point=self.mount,
            )
        except hvac.exceptions.InvalidRequest as e:
            if CAS_MISMATCH in str(e):
                return None
            raise VaultUnavailable(f"Vault refused writing {self.mount}/{path}: {e}") from None
        if answer is None:
            raise VaultUnavailable(
                f"Vault has no KV v2 engine at '{self.mount}' to write {path} in",
                hint="enable one (vault secrets enable -path=secret -version=2 kv) or set "
                "QUAYSIDE_CONFIG_VAULT_MOUNT",
            )
        if base_version == 0:
            self._call(
                f"setting max_versions of {self.mount}/{path}",
                self._kv.update_metadata,
                path=path,
                max_versions=VERSIONS_KEPT,
                mount_point=self.mount,
            )
        return int(answer["data"]["version"])

    # items ---------------------------------------------------------------------------------

    def _item_record(self, address: ItemAddress, answer: dict[str, Any]) -> ItemVersion:
        data, metadata = answer["data"], answer["metadata"]
        restored = data.get("restored_from")
        return ItemVersion(
            address=address,
            version=int(metadata["version"]),
            content=str(data["content"]),
            content_hash=str(data["content_hash"]),
            author=str(data.get("author", "")),
            message=str(data.get("message", "")),
            created_at=_parse_time(str(data.get("at") or metadata["created_time"])),
            template=bool(data.get("template", False)),
            restored_from=None if restored is None else int(restored),
        )

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
        path = self._item_path(address)
        data = {
            "content": content,
            "content_hash": content_hash,
            "author": author,
            "message": message,
            "template": template,
            "restored_from": restored_from,
            "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        written = self._write(path, data, base_version)
        if written is None:
            raise stale_item(
                self.item_version(address), base_version=base_version, attempted=content
            )
        return self.item_version(address, written)

    def item_versions(self, address: ItemAddress) -> list[ItemVersion]:
        path = self._item_path(address)
        out = []
        for number in self._live_versions(path):
            answer = self._read(path, number)
            if answer is not None:
                out.append(self._item_record(address, answer))
        return out

    def item_version(self, address: ItemAddress, version: int | None = None) -> ItemVersion:
        answer = self._read(self._item_path(address), version)
        if answer is None:
            if version is None:
                raise VersionNotFound(f"config item {address} does not exist")
            raise VersionNotFound(
                f"config item {address} has no version {version}",
                hint=f"see its versions with `quayside config history {address}`",
            )
        return self._item_record(address, answer)

    def _list(self, path: str) -> list[str]:
        answer = self._call(
            f"listing {self.mount}/{path}",
            self._kv.list_secrets,
            path=path,
            mount_point=self.mount,
        )
        return [] if answer is None else [str(k) for k in answer["data"]["keys"]]

    def _walk(self, path: str) -> list[str]:
        found: list[str] = []
        for key in self._list(path):
            if key.endswith("/"):
                found.extend(f"{key}{rest}" for rest in self._walk(f"{path}/{key.rstrip('/')}"))
            else:
                found.append(key)
        return found

    def list_items(self, project: str, environment: str | None = None) -> list[ItemAddress]:
        base = f"{self.prefix}/items/{project}"
        if environment is not None:
            base += f"/{environment}"
        out = []
        for relative in self._walk(base):
            full = f"{project}/{environment}/{relative}" if environment else f"{project}/{relative}"
            out.append(ItemAddress.parse(full))
        return sorted(out, key=str)

    def published_marker(self, address: ItemAddress) -> PublishedMarker | None:
        metadata = self._metadata(self._item_path(address))
        custom = (metadata or {}).get("custom_metadata") or {}
        if "published_version" not in custom:
            return None
        return PublishedMarker(
            int(custom["published_version"]),
            _parse_time(custom["published_at"]),
            str(custom["published_by"]),
            _read_variables(custom),
        )

    def set_published(
        self,
        address: ItemAddress,
        version: int,
        *,
        by: str,
        at: datetime,
        variables: Mapping[str, int] | None = None,
    ) -> None:
        path = self._item_path(address)
        self.item_version(address, version)
        metadata = self._metadata(path) or {}
        # custom_metadata is replaced whole: drop the previous marker's variable chunks
        custom = {
            k: v
            for k, v in dict(metadata.get("custom_metadata") or {}).items()
            if not k.startswith(VARIABLES_KEY)
        }
        custom.update(
            published_version=str(version),
            published_by=by,
            published_at=at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        if variables is not None:
            custom.update(_variable_chunks(variables))
        if len(custom) > MAX_CUSTOM_KEYS:
            raise VaultUnavailable(
                f"the published marker of {address} needs {len(custom)} custom_metadata keys "
                f"in {self.mount}/{path}; Vault keeps at most {MAX_CUSTOM_KEYS}",
                hint="the template uses too many variables to record in Vault's metadata; "
                "use the ledger backend for it",
            )
        self._call(
            f"writing metadata of {self.mount}/{path}",
            self._kv.update_metadata,
            path=path,
            custom_metadata=custom,
            mount_point=self.mount,
        )

    # variables -----------------------------------------------------------------------------

    def _variable_record(
        self, env: EnvAddress, name: str, answer: dict[str, Any]
    ) -> VariableVersion:
        data, metadata = answer["data"], answer["metadata"]
        kind: VariableKind = "vault-ref" if data.get("kind") == "vault-ref" else "value"
        return VariableVersion(
            env=env,
            name=name,
            version=int(metadata["version"]),
            stored=str(data["value"]),
            secret=bool(data.get("secret", False)),
            kind=kind,
            author=str(data.get("author", "")),
            message=str(data.get("message", "")),
            created_at=_parse_time(str(data.get("at") or metadata["created_time"])),
        )

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
        path = self._variable_path(env, name)
        data = {
            "value": stored,
            "secret": secret,
            "kind": kind,
            "author": author,
            "message": message,
            "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        written = self._write(path, data, base_version)
        if written is None:
            latest = self._read(path, None)
            assert latest is not None
            raise stale_variable(
                self._variable_record(env, name, latest),
                base_version=base_version,
                attempted=stored,
                secret=secret,
            )
        answer = self._read(path, written)
        assert answer is not None
        return self._variable_record(env, name, answer)

    def variable_versions(self, env: EnvAddress, name: str) -> list[VariableVersion]:
        path = self._variable_path(env, name)
        out = []
        for number in self._live_versions(path):
            answer = self._read(path, number)
            if answer is not None:
                out.append(self._variable_record(env, name, answer))
        return out

    def latest_variables(self, env: EnvAddress) -> list[VariableVersion]:
        out = []
        for key in sorted(self._list(f"{self.prefix}/vars/{env}")):
            if key.endswith("/"):
                continue
            answer = self._read(self._variable_path(env, key), None)
            if answer is not None:
                out.append(self._variable_record(env, key, answer))
        return out
