"""An item's content as it would be published: the file as saved, or for a template, rendered
with its environment's variables (secrets included, so the result is for hosts only: show it
through :meth:`quayside.config.variables.ResolvedVariables.redact`); and what was published:
the published version rendered with the variable versions its publish used."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from quayside.config.address import ItemAddress
from quayside.config.records import ItemVersion, content_hash
from quayside.config.secret_box import SecretBox
from quayside.config.store import ConfigStore
from quayside.config.templates import render, variables_used
from quayside.config.variables import ResolvedVariables, resolved, resolved_at, versions_at
from quayside.config.vault_refs import VaultReader


@dataclass(frozen=True)
class RenderedItem:
    """What goes to the hosts for one item version."""

    source: ItemVersion
    content: str = field(repr=False)
    content_hash: str
    variables: ResolvedVariables

    @property
    def shown(self) -> str:
        """The rendered content with secret values masked (for diffs, artifacts, approvals)."""
        return self.variables.redact(self.content)

    @property
    def used(self) -> dict[str, int]:
        """name -> version of the variables the template read (empty for a plain file): what
        the published marker records."""
        if not self.source.template:
            return {}
        names = variables_used(str(self.source.address), self.source.content)
        return {n: v for n, v in sorted(self.variables.versions.items()) if n in names}


def render_version(
    store: ConfigStore,
    version: ItemVersion,
    *,
    box: SecretBox | None,
    reader: VaultReader | None = None,
    variable_versions: Mapping[str, int] | None = None,
) -> RenderedItem:
    """Render ``version`` (a template) or take it as it is.

    Args:
        variable_versions: render with these variable versions (the others at their latest);
            default every variable at its latest.

    Raises:
        TemplateError: a missing variable (named with template and line), a sandbox refusal.
        UnknownVaultPath: a variable's Vault reference does not exist.
        VersionNotFound: a named variable version does not exist.
    """
    env = version.address.env
    if not version.template:
        variables = ResolvedVariables({}, {})
    elif variable_versions is None:
        variables = resolved(store, box, env, reader)
    else:
        variables = resolved_at(store, box, env, variable_versions, reader)
    content = (
        render(str(version.address), version.content, variables.values)
        if version.template
        else version.content
    )
    return RenderedItem(version, content, content_hash(content), variables)


def render_published(
    store: ConfigStore,
    address: ItemAddress,
    *,
    box: SecretBox | None,
    reader: VaultReader | None = None,
) -> RenderedItem | None:
    """What the item's last publish put on the hosts: the published version rendered with the
    variable versions the marker recorded — never a variable saved since (None when it was
    never published).

    A marker moved before markers kept variable versions records none: it is rendered with
    the versions that were current when it was published (from the variables' history),
    and a variable with no version by then at its latest.

    Raises:
        TemplateError, UnknownVaultPath, VersionNotFound: as :func:`render_version`.
    """
    marker = store.published_marker(address)
    if marker is None:
        return None
    version = store.item_version(address, marker.version)
    recorded = marker.variables
    if recorded is None and version.template:
        recorded = versions_at(store, address.env, marker.at)
    return render_version(store, version, box=box, reader=reader, variable_versions=recorded or {})
