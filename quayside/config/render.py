"""An item's content as it would be published: the file as saved, or for a template, rendered
with its environment's variables (secrets included, so the result is for hosts only: show it
through :meth:`quayside.config.variables.ResolvedVariables.redact`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from quayside.config.records import ItemVersion, content_hash
from quayside.config.secret_box import SecretBox
from quayside.config.store import ConfigStore
from quayside.config.templates import render
from quayside.config.variables import ResolvedVariables, resolved
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


def render_version(
    store: ConfigStore,
    version: ItemVersion,
    *,
    box: SecretBox | None,
    reader: VaultReader | None = None,
) -> RenderedItem:
    """Render ``version`` (a template) or take it as it is.

    Raises:
        TemplateError: a missing variable (named with template and line), a sandbox refusal.
        UnknownVaultPath: a variable's Vault reference does not exist.
    """
    variables = (
        resolved(store, box, version.address.env, reader)
        if version.template
        else ResolvedVariables({}, {})
    )
    content = (
        render(str(version.address), version.content, variables.values)
        if version.template
        else version.content
    )
    return RenderedItem(version, content, content_hash(content), variables)
