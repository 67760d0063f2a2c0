"""What an image build asks the engine for, as data: the image's name, its OCI labels and the
arguments of the Engine API's build call. Nothing here talks to an engine; every name that
reaches the engine is checked against the distribution spec's grammar first, so a name or tag
with a shell metacharacter is refused before anything runs.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quayside.errors import InputError
from quayside.registry.names import ImageName

LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_REF = "org.opencontainers.image.ref.name"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_VERSION = "org.opencontainers.image.version"

_BUILD_ARG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def image_name(registry_host: str, repository: str, tag: str) -> ImageName:
    """``registry_host/repository:tag``, each part checked.

    Raises:
        quayside.registry.InvalidImageName: a part breaks the grammar (an InputError).
    """
    return ImageName(registry_host, repository, tag=tag)


def oci_labels(
    *, source: str, commit_sha: str, ref: str, version: str, created: datetime
) -> dict[str, str]:
    """The OCI annotations a built image carries: where its code came from and when.

    >>> oci_labels(source="https://git.example.com/shop.git", commit_sha="ab" * 20,
    ...            ref="main", version="1.0.1",
    ...            created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))[LABEL_CREATED]
    '2026-01-02T03:04:05Z'
    """
    return {
        LABEL_SOURCE: source,
        LABEL_REVISION: commit_sha,
        LABEL_REF: ref,
        LABEL_VERSION: version,
        LABEL_CREATED: created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def inside(root: Path, relative: str, what: str) -> Path:
    """``root/relative`` for a path from quayside.yaml, refused when it leaves ``root``.

    Raises:
        InputError: an absolute path or one going above ``root`` (names ``what``).
    """
    normal = posixpath.normpath(relative)
    if relative.startswith("/") or normal == ".." or normal.startswith("../"):
        raise InputError(
            f"{what} {relative!r} is outside the source tree",
            hint=f"give {what} relative to the repository's root",
        )
    return root / normal


def check_build_args(build_args: Mapping[str, str]) -> dict[str, str]:
    """``build_args`` if every name is an ARG name (values go to the engine as data).

    Raises:
        InputError: a name that no Dockerfile ARG can have.
    """
    for name in build_args:
        if _BUILD_ARG.fullmatch(name) is None:
            raise InputError(
                f"build argument name {name!r} is not valid",
                hint="letters, digits and '_', not starting with a digit",
            )
    return dict(build_args)


def build_arguments(
    *,
    context: Path,
    dockerfile: str,
    image: ImageName,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    timeout_s: float,
) -> dict[str, Any]:
    """Keyword arguments of ``docker.APIClient.build`` for one build: the layer cache is used
    (no ``nocache``, no ``pull``: base images come from the engine), intermediate containers
    are removed even when a step fails, and the output is decoded JSON, streamed.

    ``dockerfile`` is relative to ``context``, as the engine reads it.
    """
    return {
        "path": str(context),
        "dockerfile": dockerfile,
        "tag": f"{image.registry}/{image.repository}:{image.tag}",
        "buildargs": check_build_args(build_args),
        "labels": dict(labels),
        "rm": True,
        "forcerm": True,
        "nocache": False,
        "pull": False,
        "decode": True,
        "timeout": int(timeout_s),
    }
