"""Image build tasks: the build and push on the engine (one task run, its output streamed
into the run log line by line) and the build summary artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from quayside.images.build_image import BuildResult, BuildSpec, build_and_push
from quayside.images.engine_build import open_engine
from quayside.markdown_text import code, inline


@task(task_run_name="build and push", cache_policy=NO_CACHE)
def build_image(spec: BuildSpec, source: Path, engine_url: str) -> BuildResult:
    """Build the exported ``source`` on the engine at ``engine_url`` and push it to the
    environment's registry (not retried: a failed Dockerfile fails again; a retry of the
    whole flow reuses the layer cache).

    Args:
        spec: what to build and where to push it.
        source: the tree exported at ``spec.commit_sha``.
        engine_url: the Docker engine that builds (``unix://``, ``ssh://``, ``tcp://``).

    Returns:
        The pushed image, its digest (as the registry reports it) and the artifact checksum.

    Raises:
        quayside.images.errors.BuildFailed: the failing step and its error lines.
        quayside.images.errors.PushFailed: the registry refused the push (registry and user).
        quayside.registry.RegistryAuthError: wrong credentials (checked before building).
    """
    logger = get_run_logger()
    api = open_engine(engine_url, timeout_s=spec.build.timeout_s)
    try:
        result = build_and_push(spec, source, api, lambda line: logger.info("%s", line))
    finally:
        api.close()
    logger.info(
        "built %s (%d of %d steps from the layer cache) in %.1fs, pushed in %.1fs: %s",
        result.image,
        len(result.cached_steps),
        len(result.steps),
        result.build_s,
        result.push_s,
        result.digest,
    )
    return result


def summary_markdown(
    app: str, env: str, ref: str, commit_sha: str, reason: str, result: BuildResult
) -> str:
    """The build summary a user reads in the run's artifacts."""
    rows = [
        ("image", code(result.image, in_table=True)),
        ("digest", code(result.digest, in_table=True)),
        ("version", f"{code(result.version, in_table=True)} ({inline(reason)})"),
        ("ref", f"{code(ref, in_table=True)} at {code(commit_sha[:12], in_table=True)}"),
        ("layer cache", f"{len(result.cached_steps)} of {len(result.steps)} steps"),
        ("build / push", f"{result.build_s:.1f}s / {result.push_s:.1f}s"),
    ]
    if result.artifact_path is not None:
        rows.append(
            (
                f"artifact {code(result.artifact_path, in_table=True)}",
                code(result.artifact_sha256, in_table=True),
            )
        )
    lines = [
        f"# Image build: {inline(app)} {inline(result.version)}",
        "",
        f"Built from {inline(ref)} and pushed to the {inline(env)} registry.",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        f"Release it by digest: {code(result.by_digest)}",
    ]
    return "\n".join(lines)


def publish_summary(key: str, markdown: str, description: str) -> None:
    """The build summary as the run's Markdown artifact (a failure to publish it is only a
    warning: the image is built and recorded)."""
    try:
        create_markdown_artifact(markdown=markdown, key=key, description=description)
    except Exception as e:  # the build stands without its summary
        get_run_logger().warning("could not publish the build summary artifact: %s", e)
