"""The config an image release injects: the environment's files of the app's
``image.run.config_service`` from the config center, rendered with the environment's
variables (the config publish renderer), and the config version a release records and a
rollback restores - the files' versions, the variable versions their templates read and the
rendered content's digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from quayside.config.address import EnvAddress
from quayside.config.publish_files import choose_items, rendered_files
from quayside.config.publish_plan import content_digest
from quayside.config.publish_variables import check_variable_versions
from quayside.config.secret_box import SecretBox
from quayside.config.store import ConfigStore
from quayside.config.vault_refs import VaultReader

NO_CONFIG = "none"


@dataclass(frozen=True)
class ReleaseConfig:
    """The rendered files (secrets included: for hosts only) and their version."""

    version: str
    """The rendered content's digest (``none`` without a config service)."""
    files: Mapping[str, int] = field(default_factory=dict)
    """filename -> config center version."""
    variables: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """filename -> the variable versions its template read (empty for a plain file): what a
    rollback renders it with again."""
    rendered: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def render_release_config(
    store: ConfigStore,
    app: str,
    env: str,
    service: str | None,
    versions: Mapping[str, int] | None,
    *,
    box: SecretBox | None,
    reader: VaultReader | None,
    variable_versions: Mapping[str, int] | None = None,
) -> ReleaseConfig:
    """Render ``service``'s files of ``app``/``env``: at ``versions`` (a rollback's), else
    each file's latest draft; templates with ``variable_versions`` (variable -> version, a
    rollback's; the others at their latest), checked as config publish checks them.

    Raises:
        InputError: a bad version or ``variable_versions`` (the key named).
        NotFoundError: the service has no files, a version does not exist, or a variable
            (or its version) named in ``variable_versions``.
        TemplateError: a template does not render (named).
    """
    pinned = check_variable_versions(store, EnvAddress(app, env), variable_versions)
    if service is None:
        return ReleaseConfig(NO_CONFIG)
    chosen = choose_items(store, app, env, service, None, versions)
    files, seen = rendered_files(store, chosen, box, reader, pinned)
    return ReleaseConfig(
        content_digest(files, seen),
        {f.filename: f.version for f in files},
        {f.filename: dict(f.variables) for f in files},
        tuple((f.filename, f.content) for f in files),
    )
