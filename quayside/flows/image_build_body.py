"""What :func:`quayside.flows.image_build.image_build` does, step by step: resolve the app,
its build environment's registry and the ref; under the app/env lock choose the version from
the ledger; export the source, build, push, read the digest back from the registry; record
the ``image-build`` release and publish the summary."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from quayside.images.build_image import BuildSpec, summary_fields
from quayside.images.build_target import build_target
from quayside.images.engine_build import build_engine_url
from quayside.images.registry_access import registry_of, registry_settings
from quayside.images.versions import VersionChoice, already_built, choose_version, parse_version
from quayside.ledger.image_builds import BuiltImage, built_images
from quayside.ledger.models import Release, ReleaseKind, ReleaseStatus
from quayside.registry.names import check_repository
from quayside.runs.secrets import secret_value
from quayside.tasks.image_build import build_image, publish_summary, summary_markdown
from quayside.tasks.params import opaque
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.release_report import artifact_key
from quayside.tasks.release_resolve import resolve_release
from quayside.tasks.source import resolve_ref


def build_release(
    *, app: str, ref: str, env: str, requested_by: str, lock_wait_s: float
) -> dict[str, Any]:
    """The body of :func:`quayside.flows.image_build.image_build` (its docstring says what
    it does and returns), run in a thread by :func:`quayside.tasks.sync_body.run_sync_body`."""
    # an image build has no hosts: its target is the build environment's registry
    resolved = resolve_release({"app": app, "env": env}, requested_by, target=False)
    settings, inventory, requested_by = resolved.settings, resolved.inventory, resolved.requested_by
    config, image = build_target(inventory, app, env)
    repository = check_repository(registry_of(inventory, app, env).repository)
    # a missing secret refuses here
    registry = registry_settings(inventory, app, env, secrets=secret_value)
    source = resolve_ref(settings.mirrors_dir, config.repo, ref, app)
    sha = source.commit_sha
    is_tag = ref in source.mirror.tags()

    request = ReleaseRequest(
        app,
        env,
        ReleaseKind.image_build,
        version=None,
        shown=f"image build of {ref}",
        requested_by=requested_by,
        fields={"ref": ref, "commit_sha": sha},
        details={"registry": registry.host, "repository": repository},
        lock_wait_s=lock_wait_s,
        announce=False,  # a build changes nothing that serves: release and promote tell
    )
    logger = get_run_logger()
    with ReleaseLifecycle(request) as life:  # no hosts: no approval, no apply
        life.lock()  # one build of app/env at a time: the version sequence is read under it
        built = built_images(life.engine, app)
        choice = choose_version(ref, ref_is_tag=is_tag, recorded=[b.version for b in built])
        same = _same_build(app, ref, choice, sha, is_tag, built)
        if same is not None:
            return _no_change(life, same, ref)
        logger.info("version %s (%s)", choice.tag, choice.reason)
        spec = BuildSpec.make(
            app=app,
            ref=ref,
            commit_sha=sha,
            source_url=source.mirror.display_url,
            version=choice.tag,
            repository=repository,
            build=image.build,
            registry=registry,
        )
        life.request = replace(life.request, version=choice.tag, shown=f"{choice.tag} ({ref})")
        life.start(details={"version_reason": choice.reason, "image": str(spec.image)})
        life.step = "export"
        work = Path(tempfile.mkdtemp(prefix=f"{app}-", dir=_builds_dir(settings.home)))
        life.callback(shutil.rmtree, work, True)
        tree = source.mirror.export(sha, work / "source")
        life.step = "build"
        result = build_image(opaque(spec), tree, build_engine_url())
        life.step = None
        row = life.record()

        def digest_column(session: Any) -> None:  # the column release and promote read
            session.get(Release, row).image_digest = result.digest

        life.finish(
            ReleaseStatus.succeeded,
            event=None,
            summary={
                "result": "built",
                "image": result.image,
                "digest": result.digest,
                "cached_steps": len(result.cached_steps),
                "steps": len(result.steps),
            },
            details={**summary_fields(result), "version_reason": choice.reason},
            also=digest_column,
        )
    publish_summary(
        artifact_key("image-build", app, env),
        summary_markdown(app, env, ref, sha, choice.reason, result),
        f"image build of {app} {result.version}",
    )
    return {
        "release": life.row,
        "result": "built",
        "version": result.version,
        "image": result.image,
        "digest": result.digest,
        "commit": sha,
        "artifact_sha256": result.artifact_sha256,
        "cached_steps": len(result.cached_steps),
        "steps": len(result.steps),
    }


def _builds_dir(home: Path) -> Path:
    path = home / "image-builds"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _same_build(
    app: str,
    ref: str,
    choice: VersionChoice,
    sha: str,
    is_tag: bool,
    built: list[BuiltImage],
) -> BuiltImage | None:
    """The recorded build this one would repeat (None: build): the tag's version built from
    this commit, or, for a branch or a commit, any version built from it.

    Raises:
        quayside.images.errors.VersionRefused: the tag's version was built from other code.
    """
    if already_built(app, choice, sha, {b.version: b.commit_sha or "" for b in built}):
        return next(b for b in built if b.version == choice.tag)
    if is_tag and parse_version(ref) is not None:
        return None  # a new version tag of built code: built again under its own name
    return next((b for b in built if b.commit_sha == sha), None)


def _no_change(life: ReleaseLifecycle, same: BuiltImage, ref: str) -> dict[str, Any]:
    """Finish as "no change": this commit is already built (and pushed) as ``same``."""
    text = f"{ref} is already built as {same.version} ({same.digest})"
    life.start()
    life.finish(
        ReleaseStatus.cancelled,
        event=None,
        summary={"result": "no change", "version": same.version, "digest": same.digest},
        details={"same_as_release": same.release_id},
    )
    get_run_logger().info("no change: %s", text)
    return {
        "release": life.row,
        "result": "no change",
        "version": same.version,
        "image": same.details.get("image"),
        "digest": same.digest,
        "commit": same.commit_sha,
        "artifact_sha256": same.details.get("artifact_sha256"),
        "cached_steps": 0,
        "steps": 0,
    }
