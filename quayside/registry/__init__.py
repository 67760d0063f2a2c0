"""An OCI distribution API client for copy-by-digest: a registry's settings
(:class:`RegistrySettings`), a thread-safe sync client (:class:`RegistryClient`: Basic and
Bearer token auth, manifests with every OCI/Docker media type, blob HEAD, cross-repository
mount, chunked uploads) and :func:`copy_image`, which copies an image or a whole image index
between registries without changing its digest and verifies it at the target.

Modules: ``names`` (spec grammar), ``api`` (requests as data), ``auth`` (challenges, tokens),
``manifests`` (media types, references), ``client`` (the HTTP edge), ``copy`` (plan, apply,
verify), ``errors``.
"""

from quayside.registry.client import RegistryClient
from quayside.registry.copy import CopyPlan, CopyResult, ImageLocation, copy_image, plan_copy
from quayside.registry.errors import (
    DigestMismatch,
    InvalidImageName,
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
)
from quayside.registry.names import ImageName, parse_image_name
from quayside.registry.settings import RegistrySettings

__all__ = [
    "CopyPlan",
    "CopyResult",
    "DigestMismatch",
    "ImageLocation",
    "ImageName",
    "InvalidImageName",
    "ManifestNotFound",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "RegistrySettings",
    "RegistryUnreachable",
    "copy_image",
    "parse_image_name",
    "plan_copy",
]
