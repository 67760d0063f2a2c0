"""Variables per project/environment (addresses, endpoints, credentials: what differs between
environments), versioned like config items.

A secret variable is sealed with the data directory's key before a backend that does not
encrypt stores it (the ledger), and is shown everywhere as ``•••• (vN)``. A variable may instead
point at a Vault KV v2 path (``mount/path#key``): the value is read from Vault when a template
is rendered, and an unknown path is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from quayside.config.address import EnvAddress, check_variable_name
from quayside.config.errors import VersionNotFound
from quayside.config.limits import MAX_MESSAGE_CHARS, MAX_VARIABLE_BYTES
from quayside.config.masking import MASK, SecretText, shown
from quayside.config.records import VariableVersion
from quayside.config.secret_box import SecretBox
from quayside.config.store import ConfigStore
from quayside.config.vault_refs import VaultReader, parse_reference
from quayside.errors import InputError


def _check_value(value: object) -> str:
    if not isinstance(value, str):
        raise InputError("value: must be text")
    size = len(value.encode("utf-8"))
    if size > MAX_VARIABLE_BYTES:
        raise InputError(f"value: {size} bytes is over the variable limit of {MAX_VARIABLE_BYTES}")
    return value


def _base(store: ConfigStore, env: EnvAddress, name: str, base_version: int | None) -> int:
    if base_version is not None:
        return base_version
    versions = store.variable_versions(env, name)
    return versions[-1].version if versions else 0


def set_value(
    store: ConfigStore,
    box: SecretBox | None,
    env: EnvAddress,
    name: str,
    value: str,
    *,
    author: str,
    secret: bool = False,
    base_version: int | None = None,
    message: str = "",
    at: datetime | None = None,
) -> VariableVersion:
    """Save ``value`` as the variable's next version.

    Args:
        box: seals secrets for a backend that does not encrypt (required then).
        base_version: the version the edit started from (0: a new variable); default the
            latest now (a plain overwrite, still kept in the history).

    Raises:
        InputError: a bad name, a value too large, a secret without a box.
        StaleSave: ``base_version`` is not the latest; the error masks secrets.
    """
    check_variable_name(name)
    _check_value(value)
    if len(message) > MAX_MESSAGE_CHARS:
        raise InputError(f"message: longer than {MAX_MESSAGE_CHARS} characters")
    stored = value
    if secret and not store.encrypts_secrets:
        if box is None:
            raise InputError(f"{env} ${name}: a secret needs the data directory's key to be sealed")
        stored = box.seal(value)
    return store.append_variable_version(
        env,
        name,
        base_version=_base(store, env, name, base_version),
        stored=stored,
        secret=secret,
        kind="value",
        author=author,
        message=message,
        at=at or datetime.now(UTC),
    )


def set_vault_reference(
    store: ConfigStore,
    env: EnvAddress,
    name: str,
    reference: str,
    *,
    author: str,
    reader: VaultReader | None = None,
    base_version: int | None = None,
    message: str = "",
    at: datetime | None = None,
) -> VariableVersion:
    """Make the variable point at a Vault KV v2 secret (``mount/path#key``); its value is
    secret and read at render time.

    Args:
        reader: when given, the reference is checked now.

    Raises:
        InputError: a malformed reference.
        UnknownVaultPath: ``reader`` found no such path or key (named).
    """
    check_variable_name(name)
    parse_reference(reference)
    if reader is not None:
        reader.read(reference, what=f"{env} ${name}")
    return store.append_variable_version(
        env,
        name,
        base_version=_base(store, env, name, base_version),
        stored=reference,
        secret=True,
        kind="vault-ref",
        author=author,
        message=message,
        at=at or datetime.now(UTC),
    )


def _record(store: ConfigStore, env: EnvAddress, name: str, version: int | None) -> VariableVersion:
    versions = store.variable_versions(env, name)
    if not versions:
        raise VersionNotFound(
            f"variable ${name} is not set in {env}",
            hint=f"set it with `quayside vars set {env} {name} VALUE`",
        )
    if version is None:
        return versions[-1]
    for record in versions:
        if record.version == version:
            return record
    raise VersionNotFound(f"variable ${name} of {env} has no version {version}")


def value_of(
    record: VariableVersion, box: SecretBox | None, reader: VaultReader | None = None
) -> str:
    """The plaintext value of ``record`` (a secret as :class:`SecretText`, masked when printed
    or logged).

    Raises:
        InputError: a sealed secret without a box, or a Vault reference without a reader.
        UnknownVaultPath: the referenced Vault path or key does not exist.
    """
    what = f"{record.env} ${record.name} v{record.version}"
    if record.kind == "vault-ref":
        if reader is None:
            raise InputError(f"{what}: refers to Vault ({record.stored}) and no Vault is set up")
        return SecretText(reader.read(record.stored, what=what))
    if not record.secret:
        return record.stored
    if record.stored.startswith("fernet:"):
        if box is None:
            raise InputError(f"{what}: a sealed secret needs the data directory's key")
        return SecretText(box.open(record.stored, what=what))
    return SecretText(record.stored)


@dataclass(frozen=True)
class ShownVariable:
    """A variable as listings show it: the value, or ``•••• (vN)`` for a secret."""

    name: str
    version: int
    secret: bool
    shown: str
    author: str
    created_at: datetime


def _shown(record: VariableVersion) -> ShownVariable:
    return ShownVariable(
        record.name, record.version, record.secret, shown(record), record.author, record.created_at
    )


def get(
    store: ConfigStore, env: EnvAddress, name: str, version: int | None = None
) -> ShownVariable:
    """The variable as it may be shown (secrets masked).

    Raises:
        VersionNotFound: no such variable or version.
    """
    return _shown(_record(store, env, name, version))


def reveal(
    store: ConfigStore,
    box: SecretBox | None,
    env: EnvAddress,
    name: str,
    version: int | None = None,
    reader: VaultReader | None = None,
) -> str:
    """The plaintext value (for a deliberate ``vars get --reveal``)."""
    value = value_of(_record(store, env, name, version), box, reader)
    return value.reveal() if isinstance(value, SecretText) else value


def history(store: ConfigStore, env: EnvAddress, name: str) -> list[ShownVariable]:
    """Every version of the variable as it may be shown, oldest first."""
    return [_shown(r) for r in store.variable_versions(env, name)]


def listing(store: ConfigStore, env: EnvAddress) -> list[ShownVariable]:
    """The environment's variables (latest versions) as they may be shown."""
    return [_shown(r) for r in store.latest_variables(env)]


@dataclass(frozen=True)
class ResolvedVariables:
    """An environment's variables with their plaintext values, for rendering templates, and
    what it takes to mask the secret ones again in anything shown (a diff of rendered files)."""

    values: dict[str, str] = field(repr=False)
    secret_versions: dict[str, int]
    """name → version of every secret variable."""
    versions: dict[str, int] = field(default_factory=dict)
    """name → version of every variable (what a rendering depended on: bind approvals to it)."""

    def __repr__(self) -> str:
        return (
            f"ResolvedVariables(versions={self.versions}, secrets={sorted(self.secret_versions)})"
        )

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``•••• (vN)`` (longest first, so a
        secret that contains another is masked whole)."""
        secrets = sorted(
            ((self.values[n], v) for n, v in self.secret_versions.items() if self.values[n]),
            key=lambda pair: -len(pair[0]),
        )
        for value, version in secrets:
            text = text.replace(value, f"{MASK} (v{version})")
        return text


def _resolve(
    records: list[VariableVersion], box: SecretBox | None, reader: VaultReader | None
) -> ResolvedVariables:
    values: dict[str, str] = {}
    secrets: dict[str, int] = {}
    versions: dict[str, int] = {}
    for record in records:
        value = value_of(record, box, reader)
        values[record.name] = value.reveal() if isinstance(value, SecretText) else value
        versions[record.name] = record.version
        if record.secret:
            secrets[record.name] = record.version
    return ResolvedVariables(values, secrets, versions)


def resolved(
    store: ConfigStore, box: SecretBox | None, env: EnvAddress, reader: VaultReader | None = None
) -> ResolvedVariables:
    """Every variable of the environment with its plaintext value, for rendering templates.

    Raises:
        UnknownVaultPath: a variable's Vault reference does not exist (named).
    """
    return _resolve(store.latest_variables(env), box, reader)


def resolved_at(
    store: ConfigStore,
    box: SecretBox | None,
    env: EnvAddress,
    versions: Mapping[str, int],
    reader: VaultReader | None = None,
) -> ResolvedVariables:
    """The environment's variables at the versions named (what a published rendering used),
    the others at their latest (a template that rendered without them does not read them).

    Raises:
        VersionNotFound: a named version does not exist (any more: a Vault key keeps
            ``max_versions``), naming the variable and the version.
        UnknownVaultPath: a variable's Vault reference does not exist (named).
    """
    records = [
        _record(store, env, latest.name, versions[latest.name])
        if latest.name in versions
        else latest
        for latest in store.latest_variables(env)
    ]
    named = {r.name for r in records}
    records += [_record(store, env, n, v) for n, v in sorted(versions.items()) if n not in named]
    return _resolve(records, box, reader)


def versions_at(store: ConfigStore, env: EnvAddress, when: datetime) -> dict[str, int]:
    """name -> the version of each variable of the environment that was current at ``when``
    (variables saved only later are left out): what a published marker that recorded no
    variable versions (moved before markers kept them) was rendered with, as far as the
    history tells."""
    found: dict[str, int] = {}
    for latest in store.latest_variables(env):
        saved = [
            r.version for r in store.variable_versions(env, latest.name) if r.created_at <= when
        ]
        if saved:
            found[latest.name] = max(saved)
    return found
