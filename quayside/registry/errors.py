"""What goes wrong talking to a registry, as errors a user can act on: each names the registry
(its address), and where it matters the user, the repository and the digest — never a
password or a token."""

from __future__ import annotations

from quayside.errors import InputError, QuaysideError


class RegistryError(QuaysideError):
    """A registry refused or failed a request; ``registry`` is its address."""

    def __init__(
        self,
        registry: str,
        message: str,
        *,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.registry = registry
        self.status = status
        text = f"registry {registry}: {message}"
        if status is not None:
            text += f" (HTTP {status})"
        super().__init__(text, hint=hint)


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or gave no token for them)."""

    hint = "check the username and password of this registry's settings (block)"


class RegistryUnreachable(RegistryError):
    """No answer from the registry (down, wrong address, connection cut mid-transfer)."""

    hint = "check that the registry is running and reachable; a retry uploads only what is missing"


class ManifestNotFound(RegistryError):
    """The repository has no manifest under that digest or tag."""

    hint = "check the digest (or tag) and the repository: `skopeo inspect` shows what exists"


class DigestMismatch(RegistryError):
    """Content whose digest is not the one asked for: a blob or manifest that changed on the
    way, or a target that stored the image under another digest."""

    hint = "nothing was recorded as copied; retry, and if it persists inspect both registries"


class UnsupportedManifest(RegistryError):
    """A manifest media type this client does not copy (e.g. schema 1)."""


class InvalidImageName(InputError):
    """A repository name, tag or digest outside the distribution spec grammar."""

    hint = (
        "a repository is lowercase path components (a-z, 0-9, separators . _ __ -) joined by "
        "'/'; a tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; a digest is sha256:<64 hex>"
    )
