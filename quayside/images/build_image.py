"""One image build, step by step, without Prefect: check the registry takes the credentials
(before minutes of building), build the exported source on the engine with the app's build
arguments and the OCI labels (layer cache reused), read the artifact's checksum from the
built image, push, and ask the registry which digest the pushed tag resolves to.

The flow (:mod:`quayside.flows.image_build`) adds the version choice from the ledger, the
release lifecycle and the summary; tests and benchmarks call these steps directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quayside.errors import InputError
from quayside.images.artifact import artifact_sha256
from quayside.images.build_request import (
    build_arguments,
    check_build_args,
    image_name,
    inside,
    oci_labels,
)
from quayside.images.engine_build import run_build
from quayside.images.push import push_image, pushed_digest
from quayside.inventory.image_models import ImageBuild
from quayside.registry import RegistryClient, RegistrySettings
from quayside.registry.names import ImageName

Line = Callable[[str], None]


@dataclass(frozen=True)
class BuildSpec:
    """What to build and where to push it (resolved, checked input)."""

    app: str
    ref: str
    commit_sha: str
    source_url: str
    version: str
    image: ImageName
    build: ImageBuild
    registry: RegistrySettings

    @classmethod
    def make(
        cls,
        *,
        app: str,
        ref: str,
        commit_sha: str,
        source_url: str,
        version: str,
        repository: str,
        build: ImageBuild,
        registry: RegistrySettings,
    ) -> BuildSpec:
        """A spec with every name checked (``registry/repository:version``, build arguments).

        Raises:
            quayside.registry.InvalidImageName: the repository or the tag breaks the grammar.
            InputError: a build argument name no ARG can have.
        """
        check_build_args(build.build_args)
        image = image_name(registry.host, repository, version)
        return cls(app, ref, commit_sha, source_url, version, image, build, registry)


@dataclass
class BuildResult:
    """What a build produced: the pushed image by tag and by digest, and how it was built."""

    image: str
    version: str
    digest: str
    image_id: str
    labels: dict[str, str]
    artifact_path: str | None = None
    artifact_sha256: str | None = None
    steps: list[str] = field(default_factory=list)
    cached_steps: list[str] = field(default_factory=list)
    build_s: float = 0.0
    push_s: float = 0.0

    @property
    def by_digest(self) -> str:
        """``registry/repository@digest``: the name a release pulls."""
        return f"{self.image.rsplit(':', 1)[0]}@{self.digest}"


def check_registry(settings: RegistrySettings) -> None:
    """The registry answers and takes the credentials (before the build, not after it).

    Raises:
        quayside.registry.RegistryAuthError: wrong user or password (names registry and user).
        quayside.registry.RegistryUnreachable: no answer.
    """
    with RegistryClient(settings) as client:
        client.login()


def context_and_dockerfile(source: Path, build: ImageBuild) -> tuple[Path, str]:
    """The build context directory and the Dockerfile's path inside it.

    Raises:
        InputError: either is outside the source, or the Dockerfile is outside the context
            or missing (names the paths from quayside.yaml).
    """
    context = inside(source, build.context, "image.build.context")
    dockerfile = inside(source, build.dockerfile, "image.build.dockerfile")
    if not dockerfile.is_file():
        raise InputError(
            f"image.build.dockerfile {build.dockerfile!r} is not in the source at this ref",
            hint="commit the Dockerfile, or set image.build.dockerfile to its path",
        )
    relative = os.path.relpath(dockerfile, context)
    if relative.startswith(".."):
        raise InputError(
            f"image.build.dockerfile {build.dockerfile!r} is outside the build context "
            f"{build.context!r}",
            hint="the engine reads the Dockerfile from the context: move it there",
        )
    return context, relative


def build_and_push(
    spec: BuildSpec,
    source: Path,
    api: Any,
    on_line: Line,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BuildResult:
    """Build ``source`` (the exported tree at ``spec.commit_sha``) on the engine ``api`` and
    push it; each output line goes to ``on_line``.

    Raises:
        quayside.registry.RegistryAuthError / RegistryUnreachable: the registry refused the
            credentials or did not answer (checked first: nothing was built).
        quayside.images.errors.BuildFailed: the Dockerfile failed (step and error lines).
        quayside.images.errors.ArtifactMissing: the declared artifact is not in the image.
        quayside.images.errors.PushFailed: the push failed (registry, user, image named).
    """
    check_registry(spec.registry)
    context, dockerfile = context_and_dockerfile(source, spec.build)
    labels = oci_labels(
        source=spec.source_url,
        commit_sha=spec.commit_sha,
        ref=spec.ref,
        version=spec.version,
        created=now(),
    )
    arguments = build_arguments(
        context=context,
        dockerfile=dockerfile,
        image=spec.image,
        build_args=spec.build.build_args,
        labels=labels,
        timeout_s=spec.build.timeout_s,
    )
    started = time.monotonic()
    log = run_build(api, arguments, on_line)
    built = time.monotonic()
    assert log.image_id is not None
    checksum = None
    if spec.build.artifact_path is not None:
        checksum = artifact_sha256(api, log.image_id, spec.build.artifact_path)
        on_line(f"artifact {spec.build.artifact_path}: {checksum}")
    push_image(api, spec.image, spec.registry, on_line)
    with RegistryClient(spec.registry) as client:
        digest = pushed_digest(client, spec.image)
    on_line(f"pushed {spec.image} as {digest}")
    return BuildResult(
        image=str(spec.image),
        version=spec.version,
        digest=digest,
        image_id=log.image_id,
        labels=labels,
        artifact_path=spec.build.artifact_path,
        artifact_sha256=checksum,
        steps=log.steps,
        cached_steps=log.cached_steps,
        build_s=built - started,
        push_s=time.monotonic() - built,
    )


def summary_fields(result: BuildResult) -> Mapping[str, Any]:
    """What the ledger keeps of a build in the release's ``details``."""
    return {
        "image": result.image,
        "digest": result.digest,
        "image_id": result.image_id,
        "artifact_path": result.artifact_path,
        "artifact_sha256": result.artifact_sha256,
        "labels": result.labels,
        "steps": len(result.steps),
        "cached_steps": len(result.cached_steps),
    }
