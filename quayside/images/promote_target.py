"""What an image promotion promotes, resolved before anything is recorded: the version and
digest in the source environment (through the same resolution an image release uses, so a
bad string or a digest the source registry lacks is refused the same way), the two
registries (settings and repositories), what the target environment runs now (its latest
succeeded image release) and the commits of both builds (the commit range an approver
reads)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from quayside.errors import InputError
from quayside.images.image_release_target import ImageChoice, image_releases, resolve_image
from quayside.images.registry_access import SecretValue, registry_of, registry_settings
from quayside.inventory import Inventory
from quayside.ledger.image_builds import built_images
from quayside.ledger.models import ReleaseStatus
from quayside.registry import ImageLocation
from quayside.registry.names import TAG


@dataclass(frozen=True)
class Running:
    """What the target environment runs now, as its latest succeeded image release says."""

    release_id: int
    version: str
    digest: str


@dataclass(frozen=True)
class PromoteChoice:
    """One promotion's resolved input."""

    app: str
    from_env: str
    to_env: str
    image: ImageChoice
    """The image as the source environment resolves it (version, digest, checksum)."""
    source: ImageLocation
    target: ImageLocation
    running: Running | None
    """What ``to_env`` runs now (None: no image release succeeded there yet)."""
    commit: str | None
    """The commit the promoted digest was built from (None: no build recorded)."""
    running_commit: str | None
    """The commit of what ``to_env`` runs now (None: nothing, or no build recorded)."""

    @property
    def version(self) -> str:
        return self.image.version

    @property
    def digest(self) -> str:
        return self.image.digest

    @property
    def tag(self) -> str | None:
        """The tag the target gets: the version where it is a registry tag (a ``sha256-…``
        stand-in for an unversioned digest, or a version with ``+``, gets none)."""
        v = self.image.version
        if v.startswith("sha256-") or TAG.fullmatch(v) is None:
            return None
        return v


def resolve_promote(
    engine: Engine,
    inventory: Inventory,
    app: str,
    from_env: str,
    to_env: str,
    given: str,
    *,
    secrets: SecretValue,
) -> PromoteChoice:
    """Resolve ``given`` (a version or ``sha256:`` digest) of ``app`` in ``from_env`` for a
    promotion to ``to_env``.

    Raises:
        InputError: the same environment twice, not an image app, or ``given`` is neither a
            version nor a digest (one line, nothing recorded).
        quayside.errors.NotFoundError: the source registry has no such tag or digest (named).
        quayside.errors.ConfigError: an environment without a registry or its secret.
    """
    if from_env == to_env:
        raise InputError(
            f"from_env and to_env are both {from_env!r}; a promotion copies between two "
            "environments",
            hint=f"to run it in {to_env}, use image-release",
        )
    found = inventory.apps.get(app)
    if found is None or found.image is None:
        raise InputError(
            f"{app} is not an image app (quayside.yaml: apps.{app}.image is not set)",
            hint="only image apps are promoted",
        )
    for env in (from_env, to_env):
        if env not in found.environments:
            raise InputError(
                f"{app} has no environment {env!r}",
                hint=f"its environments: {', '.join(found.environments)}",
            )
    image = resolve_image(engine, inventory, app, from_env, given, secrets=secrets)
    source = ImageLocation(
        registry_settings(inventory, app, from_env, secrets=secrets),
        registry_of(inventory, app, from_env).repository,
    )
    target = ImageLocation(
        registry_settings(inventory, app, to_env, secrets=secrets),
        registry_of(inventory, app, to_env).repository,
    )
    running = running_in(engine, app, to_env)
    commits = {b.digest: b.commit_sha for b in reversed(built_images(engine, app)) if b.digest}
    return PromoteChoice(
        app, from_env, to_env, image, source, target, running,
        commits.get(image.digest), commits.get(running.digest) if running else None,
    )  # fmt: skip


def running_in(engine: Engine, app: str, env: str) -> Running | None:
    """The latest succeeded image release of ``app``/``env`` (version and digest)."""
    for r in image_releases(engine, app, env):
        if r.status is ReleaseStatus.succeeded and r.image_digest:
            return Running(int(r.id), str(r.version or "?"), str(r.image_digest))
    return None


def checked_checksum(engine: Engine, app: str, env: str, digest: str) -> str | None:
    """The artifact checksum an image release of ``digest`` in ``env`` checked (None if
    none did): the promotion's release checks the same one where no build recorded it."""
    for r in image_releases(engine, app, env):
        if r.image_digest == digest and r.status is ReleaseStatus.succeeded:
            value = (r.details or {}).get("artifact_sha256")
            if value:
                return str(value)
    return None
