"""Image build: an app's source at a git ref -> an image built on the Docker engine (layer
cache reused), tagged with the next version, pushed to the build environment's registry; its
digest and artifact checksum recorded. The flow's steps are in
:mod:`quayside.flows.image_build_body`."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from pydantic import Field

from quayside.flows.image_build_body import build_release
from quayside.tasks.release_flow import release_flow
from quayside.tasks.release_lock import run_release_body


@release_flow(
    "image-build",
    "Build an image app's git ref with the Docker engine (layer cache reused, OCI "
    "labels), version it (the tag's semver, else the next patch), push it to the build "
    "environment's registry and record its digest and artifact checksum.",
    max_workers=None,  # Prefect's default task runner
)
async def image_build(
    app: str = Field(description="image app name from quayside.yaml"),
    ref: str = Field(description="git tag, branch or commit sha"),
    env: str = Field(
        "test",
        description="the build environment: its registry receives the image (default test)",
    ),
    requested_by: str = Field("ui", description="who asked for this build"),
    lock_wait_s: float = Field(
        0, ge=0, le=3600, description="wait this long for another run's lock (0 = refuse)"
    ),
) -> dict[str, Any] | State[Any]:
    """Build ``ref`` of ``app`` and push it to the registry of ``env``.

    Exports the source at ``ref`` from the app's git mirror, builds it on the Docker engine
    (``QUAYSIDE_BUILD_DOCKER_HOST``, else ``DOCKER_HOST``, else the local socket) with the
    app's build arguments and the labels ``org.opencontainers.image.source``, ``revision``,
    ``ref.name``, ``version`` and ``created``, reusing the layer cache; every line of the
    build's output goes to the run log. The registry's credentials are checked before the
    build. The image is tagged ``<version>``: the tag's version when ``ref`` is a tag
    ``v1.2.3`` or ``1.2.3``, else the next patch after the app's newest built version
    (``0.0.1`` for the first). After the push, the manifest digest is read from the
    registry; where the app declares ``image.build.artifact_path``, the file's sha256 is read
    from the built image.

    The build environment (``env``) is the one whose registry receives new images, usually
    ``test``; images reach the others by digest through image-promote. A build holds the
    app/env lock (the version sequence is read under it) but asks for no approval: it
    changes nothing that serves.

    Ledger: one ``image-build`` release: ``succeeded`` with ``version``, ``commit_sha``,
    ``image_digest`` and, in ``details``, the image name, the artifact path and checksum and
    the labels; ``failed`` when the build or push failed (its version stays free);
    ``cancelled`` with ``summary.result == "no change"`` when this commit is already built
    (the tag's version from this commit, or for a branch or sha any version) - then the
    recorded version and digest are returned.

    Args:
        app: image app name from quayside.yaml (an app with ``image:``).
        ref: git tag, branch or commit sha.
        env: the build environment (default ``test``); it needs a ``registry``.
        requested_by: recorded in the ledger.
        lock_wait_s: 0 refuses at once when another run of app/env holds the lock.

    Returns:
        ``{"release": ledger id, "result": "built" | "no change", "version", "image",
        "digest", "commit", "artifact_sha256", "cached_steps", "steps"}``.

    Raises:
        quayside.errors.ConfigError: the app has no ``image:``, the environment no registry,
            or its password secret does not resolve (nothing was recorded).
        quayside.errors.InputError: an unsafe ref or image name (nothing was run).
        quayside.images.errors.VersionRefused: the tag's version was built from other code.
        quayside.registry.RegistryAuthError: the registry refused the credentials (names the
            registry and the user; checked before building).
        quayside.images.errors.BuildFailed: the Dockerfile failed: the failing step and its
            error lines.
        quayside.images.errors.PushFailed: the push failed (registry, user, image).

    Example:
        >>> asyncio.run(image_build("shop", "v1.4.2"))  # an async flow
    """
    return await run_release_body(
        build_release,
        app=app,
        ref=ref,
        env=env,
        requested_by=requested_by,
        lock_wait_s=lock_wait_s,
    )
