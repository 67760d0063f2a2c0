"""Image promotion: an image, by version or digest, copied by digest from one environment's
registry to another's (no rebuild, the digest verified at the target) after the approval
gate, then released in the target environment by the image release's own body. The flow's
steps are in :mod:`quayside.flows.image_promote_body`."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from pydantic import Field

from quayside.flows.image_promote_body import promote_image
from quayside.tasks.release_flow import release_flow
from quayside.tasks.release_lock import run_release_body


@release_flow(
    "image-promote",
    "Promote an app's image (version or digest) from one environment to the "
    "next: approval (digest, version, what runs there now, commit range, copy plan), copy by "
    "digest between the two registries (verified, only missing blobs), then an image release "
    "in the target environment.",
)
async def image_promote(
    app: str = Field(description="image app from quayside.yaml"),
    from_env: str = Field(description="the environment whose registry holds the image"),
    to_env: str = Field(description="the environment to promote it to (its registry, hosts)"),
    version_or_digest: str = Field(description="a version (v1.4.2) or sha256:<digest>"),
    batch: int | str | None = Field(
        None, description="hosts per batch of the release, N or 'N%' (default: the env's)"
    ),
    requested_by: str = Field("ui", description="who asked for this promotion"),
    approval: bool = Field(
        False, description="ask for approval even where to_env's policy needs none"
    ),
    lock_wait_s: float = Field(
        0, ge=0, le=3600, description="wait this long for another release's lock (0 = refuse)"
    ),
) -> dict[str, Any] | State[Any]:
    """Promote ``version_or_digest`` of image app ``app`` from ``from_env`` to ``to_env``.

    Resolves the digest in ``from_env`` (a version through the app's recorded builds, else
    its registry's tag; a digest must exist in that registry) and plans the copy (which blobs
    the target registry has). The approval gate (``to_env``'s policy, or ``approval``) shows
    the digest, the version, what ``to_env`` runs now, the commit range between the two
    builds and the copy plan. Then the image is copied by digest - only the blobs the target
    lacks, the manifest last, the digest verified at the target (refused otherwise); a
    registry that goes away is retried, each retry copying only what is still missing, and
    nothing is recorded as promoted until the copy is verified. Last, the image release body
    runs in ``to_env`` with the digest (the same code as ``image-release``: its plan, lock,
    hosts, checks); the promotion's approval covers that release (the approvers are asked
    once; its own gate asks only if that approval does not meet ``to_env``'s policy).

    Ledger: a release of kind ``image-promote`` in ``to_env`` (``image_digest``; ``details``:
    ``from_env``, ``copy`` figures, ``image_release`` id); the image release it started gets
    ``details["promote"]`` (from_env, source and target, blobs present/mounted/uploaded,
    bytes, the promotion's id).

    Args:
        app: an app with an ``image:`` section.
        from_env: the environment the image comes from (its ``registry:``).
        to_env: the environment it goes to (``registry:``, Docker hosts).
        version_or_digest: ``v1.4.2`` or ``sha256:<64 hex>``.
        batch: hosts per batch of the release.
        requested_by: recorded and shown to approvers.
        approval: ask for approval even where the policy requires none.
        lock_wait_s: 0 refuses at once when another release of app/to_env runs.

    Returns:
        ``{"promotion": id, "release": id, "result": "released" | "no change", "version",
        "digest", "copy": {...}, "hosts": {host: status}, "failed": [...]}``.

    Raises:
        quayside.errors.InputError: not a version nor a digest, one environment twice, not
            an image app (nothing recorded).
        quayside.errors.NotFoundError: the source registry has no such tag or digest.
        quayside.registry.RegistryUnreachable: a registry stayed away (nothing promoted).
        quayside.registry.DigestMismatch: the target holds another digest (refused).

    Example:
        >>> asyncio.run(image_promote("shop", "test", "prod", "v1.4.2"))
    """
    return await run_release_body(
        promote_image,
        app=app,
        from_env=from_env,
        to_env=to_env,
        version_or_digest=version_or_digest,
        batch=batch,
        requested_by=requested_by,
        approval=approval,
        lock_wait_s=lock_wait_s,
    )
