"""Which item versions a publish releases, rendered for the hosts: the latest draft of every
file of a project/environment/service (or the ones named, at the versions named), templates
rendered with the environment's variables; and a masker that hides every value a secret
variable has ever had (a host may still hold an older one, which its diff would show)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from quayside.config.address import EnvAddress, ItemAddress, check_filename
from quayside.config.errors import VersionNotFound
from quayside.config.masking import MASK, SecretText
from quayside.config.publish_plan import PublishFile
from quayside.config.render import render_version
from quayside.config.secret_box import SecretBox
from quayside.config.store import ConfigStore
from quayside.config.variables import value_of
from quayside.config.vault_refs import VaultReader
from quayside.errors import InputError, NotFoundError, QuaysideError


def choose_items(
    store: ConfigStore,
    project: str,
    env: str,
    service: str,
    files: Sequence[str] | None,
    versions: Mapping[str, int] | None,
) -> list[tuple[ItemAddress, int | None]]:
    """The items to publish and their versions (None: the latest draft).

    Raises:
        InputError: a bad filename (traversal, absolute, NUL, newline ...) or version.
        NotFoundError: the service has no items, or a named file is not one of them.
    """
    named = list(files or []) + [f for f in (versions or {}) if f not in (files or [])]
    for i, name in enumerate(named):
        check_filename(name, f"files[{i}]")
    for name, number in (versions or {}).items():
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise InputError(f"versions.{name}: must be a version number (1 or more)")
    known = [a for a in store.list_items(project, env) if a.service == service]
    if not known:
        raise NotFoundError(
            f"{project}/{env}/{service} has no config files",
            hint=f"save one with `quayside config set {project}/{env}/{service}/FILENAME`",
        )
    if not named:
        return [(a, None) for a in known]
    by_name = {a.filename: a for a in known}
    chosen = []
    for name in named:
        if name not in by_name:
            raise NotFoundError(
                f"{project}/{env}/{service}/{name} is not a config file",
                hint=f"files of {service}: {', '.join(sorted(by_name))}",
            )
        chosen.append((by_name[name], (versions or {}).get(name)))
    return chosen


def rendered_files(
    store: ConfigStore,
    chosen: Sequence[tuple[ItemAddress, int | None]],
    box: SecretBox | None,
    reader: VaultReader | None,
    variable_versions: Mapping[str, int] | None = None,
) -> tuple[list[PublishFile], dict[str, int]]:
    """The chosen versions rendered (each file with the variable versions its template read),
    and the variable versions of the environment the renderings saw (the approval is bound
    to them).

    Args:
        variable_versions: render templates with these variable versions (the others at
            their latest; a rollback's); default every variable at its latest.

    Raises:
        VersionNotFound: no such version.
        TemplateError: a missing variable or a sandbox refusal (template, line, variable).
        UnknownVaultPath: a variable's Vault path does not exist (named).
    """
    files, variables = [], {}
    for address, number in chosen:
        version = store.item_version(address, number)
        item = render_version(
            store, version, box=box, reader=reader, variable_versions=variable_versions
        )
        variables.update(item.variables.versions)
        files.append(
            PublishFile(
                address.filename,
                address,
                version.version,
                item.content,
                item.content_hash,
                item.shown,
                item.used,
            )
        )
    return files, variables


def secret_masker(
    store: ConfigStore, box: SecretBox | None, env: EnvAddress, reader: VaultReader | None
) -> Callable[[str], str]:
    """A function masking every value any secret variable of ``env`` has had."""
    pairs: list[tuple[str, int]] = []
    for latest in store.latest_variables(env):
        if not latest.secret:
            continue
        for record in store.variable_versions(env, latest.name):
            try:
                value = value_of(record, box, reader)
            except (QuaysideError, VersionNotFound):
                continue  # an old Vault path gone: nothing of it can be on a host unmasked
            text = value.reveal() if isinstance(value, SecretText) else value
            if text:
                pairs.append((text, record.version))
    pairs.sort(key=lambda p: -len(p[0]))

    def redact(text: str) -> str:
        for value, version in pairs:
            text = text.replace(value, f"{MASK} (v{version})")
        return text

    return redact
