"""The config an image release injects: the environment's files of the app's
``image.run.config_service`` from the config center, rendered with the environment's
variables (the config publish renderer), and the config version a release records and a
rollback restores - the files' versions and the rendered content's digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from quayside.config.publish_files import choose_items, rendered_files
from quayside.config.publish_plan import content_digest
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
) -> ReleaseConfig:
    """Render ``service``'s files of ``app``/``env``: at ``versions`` (a rollback's), else
    each file's latest draft.

    Raises:
        NotFoundError: the service has no files, or a version does not exist.
        TemplateError: a template does not render (named).
    """
    if service is None:
        return ReleaseConfig(NO_CONFIG)
    chosen = choose_items(store, app, env, service, None, versions)
    files, variable_versions = rendered_files(store, chosen, box, reader)
    return ReleaseConfig(
        content_digest(files, variable_versions),
        {f.filename: f.version for f in files},
        tuple((f.filename, f.content) for f in files),
    )
