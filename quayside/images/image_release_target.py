"""What an image release releases, resolved before anything is recorded: the version and the
manifest digest (from the app's recorded builds, else the environment's registry), the image
reference hosts pull, the artifact checksum the build recorded, and the registry credentials
the engines pull with. Also the ledger reads an image release needs around it: the digests a
kept release references (never pruned) and what a rollback goes back to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from quayside.config.publish_variables import rendered_with
from quayside.errors import InputError, NotFoundError
from quayside.images.containers_spec import DIGEST_RE, check_digest, check_version
from quayside.images.registry_access import SecretValue
from quayside.inventory import Inventory
from quayside.ledger.image_builds import built_images
from quayside.ledger.models import Release, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import list_releases

KIND = ReleaseKind.image


@dataclass(frozen=True)
class ImageChoice:
    """The image a release runs."""

    version: str
    digest: str
    image: str
    """``registry-host/repository@sha256:...``"""
    artifact_path: str | None
    artifact_sha256: str | None
    auth: dict[str, str] | None = field(default=None, repr=False)


def resolve_image(
    engine: Engine,
    inventory: Inventory,
    app: str,
    env: str,
    version_or_digest: str,
    expected_sha256: str | None = None,
    *,
    secrets: SecretValue,
) -> ImageChoice:
    """The version, digest and pull reference of ``version_or_digest`` for ``app``/``env``.

    A version is looked up in the app's recorded builds, then as a tag in the environment's
    registry; a digest must exist in that registry. The artifact checksum is the build's
    (``expected_sha256`` where no build recorded one; a different one is refused).

    Raises:
        InputError: not a version nor a digest (shell metacharacters ...), or a checksum that
            is not the build's.
        NotFoundError: the registry has no such tag or digest (registry and repository named).
    """
    from quayside.images.registry_access import registry_of, registry_settings
    from quayside.registry import RegistryClient

    given = version_or_digest.strip() if isinstance(version_or_digest, str) else ""
    is_digest = given.startswith("sha256:")
    if is_digest:
        check_digest(given, "version_or_digest")
    else:
        check_version(given, "version_or_digest")
    if expected_sha256 is not None and not _is_sha256(expected_sha256):
        raise InputError(f"expected_artifact_sha256: {expected_sha256[:80]!r} is not a sha256")
    ref = registry_of(inventory, app, env)
    settings = registry_settings(inventory, app, env, secrets=secrets)
    builds = built_images(engine, app)
    build = next((b for b in builds if (b.digest if is_digest else b.version) == given), None)
    with RegistryClient(settings) as client:
        digest = client.manifest_digest(ref.repository, given)
    where = f"{settings.host}/{ref.repository}"
    if digest is None:
        raise NotFoundError(
            f"{where} has no {'manifest ' if is_digest else 'tag '}{given}",
            hint="build it (image-build) or promote it to this environment's registry first",
        )
    if not is_digest:
        version = given
    elif build is not None:
        version = build.version
    else:
        version = _version_of(engine, app, env, digest)
    recorded = (build.details.get("artifact_sha256") if build else None) or None
    if recorded and expected_sha256 and _hex(recorded) != _hex(expected_sha256):
        raise InputError(
            f"expected_artifact_sha256 {_hex(expected_sha256)[:12]}... is not the checksum build "
            f"{build.release_id if build else '?'} recorded ({_hex(recorded)[:12]}...)"
        )
    app_image = inventory.apps[app].image
    artifact_path = app_image.build.artifact_path if app_image is not None else None
    if artifact_path is None and build is not None:  # the path the build hashed
        artifact_path = build.details.get("artifact_path") or None
    auth = None
    if settings.username and settings.password is not None:
        auth = {"username": settings.username, "password": settings.password.get_secret_value()}
    checksum = str(recorded or expected_sha256 or "")
    return ImageChoice(
        version, digest, f"{where}@{digest}", artifact_path, _hex(checksum) or None, auth
    )


def _is_sha256(value: str) -> bool:
    return (
        DIGEST_RE.fullmatch(value if value.startswith("sha256:") else f"sha256:{value}") is not None
    )


def _hex(value: str) -> str:
    return value.removeprefix("sha256:").lower()


def _version_of(engine: Engine, app: str, env: str, digest: str) -> str:
    """The version an earlier image release of ``digest`` recorded, else ``sha256-<12 hex>``."""
    for r in image_releases(engine, app, env):
        if r.image_digest == digest and r.version:
            return str(r.version)
    return f"sha256-{digest[7:19]}"


def image_releases(engine: Engine, app: str, env: str, limit: int = 200) -> list[Release]:
    """The image releases of ``app``/``env``, newest first."""
    return [
        r for r in list_releases(engine, app, env, limit=limit, with_hosts=False) if r.kind is KIND
    ]


def protected_digests(engine: Engine, app: str, env: str, keep: int) -> set[str]:
    """The digests of the last ``keep`` succeeded image releases (the ones a rollback may go
    back to): pruning never removes them."""
    found: list[str] = []
    for r in image_releases(engine, app, env):
        if r.status is ReleaseStatus.succeeded and r.image_digest and r.image_digest not in found:
            found.append(r.image_digest)
        if len(found) >= keep:
            break
    return set(found)


def rollback_parameters(
    engine: Engine, app: str, env: str, *, to: str | None, requested_by: str
) -> dict[str, Any]:
    """The ``image-release`` parameters that release again an earlier image release's digest
    with the config that served with it: ``to`` (a release id or a version), by default the
    succeeded image release before the newest one that serves something else. The config is
    its file versions (``config_versions``) rendered with the variable versions its templates
    read (``variable_versions``; for a release that recorded none, those current when it
    finished), so a template comes back as it served, not with today's variables.

    Raises:
        NotFoundError: nothing to go back to (named).
        InputError: the release recorded two versions of one variable.
    """
    releases = [r for r in image_releases(engine, app, env) if r.status is ReleaseStatus.succeeded]
    if not releases:
        raise NotFoundError(f"{app}/{env} has no succeeded image release to roll back")
    current = releases[0]
    if to is None:
        target = next((r for r in releases[1:] if _serves(r) != _serves(current)), None)
    elif to.strip().isdigit():
        target = next((r for r in releases if r.id == int(to)), None)
    else:
        target = next((r for r in releases if r.version == to), None)
    if target is None:
        raise NotFoundError(
            f"{app}/{env}: no earlier succeeded image release "
            + (f"'{to}'" if to else "serving something else than the current one"),
            hint=f"see `quayside releases {app} {env}`",
        )
    details = target.details or {}
    parameters: dict[str, Any] = {
        "app": app,
        "env": env,
        "version_or_digest": target.image_digest or details.get("digest"),
        "requested_by": requested_by,
        "rollback_of": int(current.id),
    }
    files = details.get("config_files")
    if isinstance(files, dict) and files:
        parameters["config_versions"] = {str(k): int(v) for k, v in files.items()}
        read = details.get("config_variables")
        recorded = (
            [read[f] for f in files]
            if isinstance(read, dict) and all(isinstance(read.get(f), dict) for f in files)
            else None  # released before image releases recorded them
        )
        parameters["variable_versions"] = rendered_with(engine, target, recorded)
    return parameters


def _serves(release: Release) -> str:
    return str((release.details or {}).get("serves") or release.image_digest)
