"""Image release: an app's image, by version or digest, on its environment's Docker hosts with
the environment's config injected - the new container started and checked beside the old
one, traffic switched through nginx's upstream, then the old one removed. The flow's steps
are in :mod:`quayside.flows.image_release_body`, each host's in
:mod:`quayside.images.image_release_host`."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from pydantic import Field

from quayside.flows.image_release_body import release_image
from quayside.tasks.release_flow import release_flow
from quayside.tasks.release_lock import run_release_body


@release_flow(
    "image-release",
    "Run an app's image (version or digest) on its environment's Docker hosts "
    "with the environment's config: new container beside the old, checked (health, HTTP, "
    "artifact checksum), traffic switched through nginx, old removed; old kept on failure.",
)
async def image_release(
    app: str = Field(description="image app from quayside.yaml"),
    env: str = Field(description="environment of the app"),
    version_or_digest: str = Field(description="a built version (v1.4.2) or sha256:<digest>"),
    config_versions: dict[str, int] | None = Field(
        None, description="config file -> version to inject (default each file's latest draft)"
    ),
    expected_artifact_sha256: str | None = Field(
        None, description="the artifact's sha256 where no image-build recorded one"
    ),
    batch: int | str | None = Field(
        None, description="hosts per batch, N or 'N%' (default: the environment's)"
    ),
    requested_by: str = Field("ui", description="who asked for this release"),
    approval: bool = Field(
        False, description="ask for approval even where the environment's policy needs none"
    ),
    lock_wait_s: float = Field(
        0, ge=0, le=3600, description="wait this long for another release's lock (0 = refuse)"
    ),
    rollback_of: int | None = Field(
        None, description="the image release this one rolls back (set by quayside rollback)"
    ),
    variable_versions: dict[str, int] | None = Field(
        None,
        description="variable -> version the config templates render with (default each "
        "variable's latest; set by rollback: the versions the release it returns to rendered "
        "with)",
    ),
) -> dict[str, Any] | State[Any]:
    """Release ``version_or_digest`` of image app ``app`` in ``env``.

    Resolves the version and the manifest digest (the app's recorded builds, else the
    environment's registry) and the artifact checksum the build recorded; renders the
    environment's files of ``image.run.config_service`` (at ``config_versions`` or the latest
    drafts; templates with the environment's variables, at ``variable_versions`` or their
    latest). Reads what each Docker host serves (the plan, shown at the approval; every host
    serving this digest with this config already: "no change", nothing recorded). Then, under
    the app/env lock, per host in batches with the failure threshold: pull by digest, write
    the config into a host directory mounted read-only, start ``<app>-<env>-<version>-<slot>``
    on the slot the serving container does not hold, check it (running/healthy, HTTP probe,
    artifact sha256), switch nginx's upstream with config publish's host code (stage,
    ``nginx -t``, swap, reload, verify), stop the old container. A failing host keeps its old
    container serving (the new one removed, the upstream restored); past the threshold every
    switched host goes back. Afterwards the old containers are removed and images beyond
    ``keep_images`` pruned, never one a kept release references.

    Ledger: a release of kind ``image`` with ``image_digest`` and ``details`` holding the
    version, digest, config version, files and, per file, the variable versions its template
    read (``config_variables``): what a rollback restores.

    Args:
        app: an app with an ``image:`` section.
        env: its environment (its hosts need ``docker:``, it needs ``registry:``).
        version_or_digest: ``v1.4.2`` or ``sha256:<64 hex>``.
        config_versions: file -> config center version (a rollback's).
        expected_artifact_sha256: checked inside the container where no build recorded one.
        batch: hosts per batch.
        requested_by: recorded and shown to approvers.
        approval: ask for approval even where the policy requires none.
        lock_wait_s: 0 refuses at once when another release of app/env runs.
        rollback_of: the release a rollback undoes.
        variable_versions: variable -> version to render templates with, the others at their
            latest (a rollback passes the versions its release rendered with). Checked before
            anything renders, as config publish checks them; the release records the versions
            the rendering read, not these.

    Returns:
        ``{"release": id, "result": "released", "version", "digest", "config_version",
        "hosts": {host: status}, "failed": [...], "cleanup": {host: what was removed}}``;
        ``"result": "no change"`` and no release when every host serves the digest with
        this config already.

    Raises:
        quayside.errors.InputError: not an image app, a bad version/digest or variable
            version, a host without docker (nothing ran).
        quayside.errors.NotFoundError: the registry has no such tag or digest; the
            environment has no such variable or variable version.
        quayside.deploy.errors.HostsFailed: a Docker host cannot be reached (nothing changed).
        quayside.deploy.errors.ThresholdExceeded: too many hosts failed; all restored.

    Example:
        >>> asyncio.run(image_release("shop", "test", "v1.4.2"))
    """
    return await run_release_body(
        release_image,
        app=app,
        env=env,
        version_or_digest=version_or_digest,
        config_versions=config_versions,
        expected_artifact_sha256=expected_artifact_sha256,
        batch=batch,
        requested_by=requested_by,
        approval=approval,
        lock_wait_s=lock_wait_s,
        rollback_of=rollback_of,
        variable_versions=variable_versions,
    )
