"""Errors of the config center: each names the thing, and the next step where there is one.

Secret values never appear in these messages: a stale save of a secret variable shows ``••••``
and the versions, never the values.
"""

from __future__ import annotations

from quayside.errors import InputError, NotFoundError, QuaysideError


class ConfigCenterError(QuaysideError):
    """Base class of the config center's errors."""


class StaleSave(ConfigCenterError):
    """A save named a version that is no longer the latest: nothing was saved.

    Attributes:
        subject: what was saved (``DNS/release/dnsmasq/dnsmasq.conf`` or ``DNS/release $X``).
        base_version: the version the save started from (0: it expected a new item).
        current_version: the latest version now.
        current_author: who saved it.
        current_shown: the latest content as it may be shown (masked for secrets).
        attempted_shown: the refused content as it may be shown (masked for secrets).
        attempted: the refused content itself, so the caller can keep it (None for secrets:
            the caller still has the value it passed).
    """

    def __init__(
        self,
        subject: str,
        *,
        base_version: int,
        current_version: int,
        current_author: str,
        current_shown: str,
        attempted_shown: str,
        attempted: str | None,
        comparison: str = "",
    ) -> None:
        self.subject = subject
        self.base_version = base_version
        self.current_version = current_version
        self.current_author = current_author
        self.current_shown = current_shown
        self.attempted_shown = attempted_shown
        self.attempted = attempted
        started = f"version {base_version}" if base_version else "no version (a new item)"
        message = (
            f"{subject}: stale save refused, nothing was saved: you started from {started}, "
            f"but the latest is version {current_version} by {current_author}"
        )
        if comparison:
            message += f"\n{comparison}"
        super().__init__(
            message,
            hint=f"merge your change with version {current_version} and save again "
            f"starting from it (--base {current_version})",
        )


class FileTooLarge(InputError):
    """A config file over the size limit."""


class VersionNotFound(NotFoundError):
    """An item or variable, or one version of it, does not exist."""


class TemplateError(ConfigCenterError):
    """A template failed to render: names the template, the line and what is wrong.

    Attributes:
        template: the template's name (its item address).
        line: the template line, when known.
        variable: the missing variable, for an undefined one.
    """

    hint = "set the variable with `quayside vars set` or fix the template"

    def __init__(
        self,
        template: str,
        problem: str,
        *,
        line: int | None = None,
        variable: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.template = template
        self.line = line
        self.variable = variable
        where = f"{template}, line {line}" if line is not None else template
        super().__init__(f"template {where}: {problem}", hint=hint)


class SandboxViolation(TemplateError):
    """A template reached for Python internals the sandbox does not allow."""

    hint = "templates may use variables, filters and loops, not Python attributes"


class UnknownVaultPath(NotFoundError):
    """A variable refers to a Vault path (or key) that does not exist."""


class VaultUnavailable(ConfigCenterError):
    """Vault refused us or could not be reached."""

    hint = "check VAULT_ADDR, the token's policy and that Vault is unsealed"
