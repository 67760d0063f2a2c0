"""Source task: the app's git mirror synced and the ref resolved to a commit."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from quayside.deploy.source import Source, resolve_source
from quayside.tasks.retry import transient_only


@task(
    task_run_name="resolve {app}@{ref}",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def resolve_ref(mirrors_dir: Path, repo: str | None, ref: str, app: str) -> Source:
    """Sync the app's bare mirror (clone once, then ``fetch --prune --tags``) and resolve
    ``ref`` (tag, branch or sha) to a full commit sha.

    Args:
        mirrors_dir: where the mirrors live (QUAYSIDE_HOME/mirrors).
        repo: the app's repository URL or path.
        ref: tag, branch or commit sha.
        app: app name, for messages.

    Returns:
        The synced mirror, the ref and its commit sha.

    Raises:
        quayside.errors.InputError: the ref has unsafe characters (nothing was run).
        quayside.errors.NotFoundError: no such ref in the repository.
        quayside.errors.CommandFailed: git could not reach or read the repository.

    Example:
        >>> resolve_ref(Path("~/.quayside/mirrors"), "https://git.example.com/web.git",
        ...             "v1.4.2", "web").commit_sha
    """
    source = resolve_source(mirrors_dir, repo, ref, app=app)
    get_run_logger().info("%s resolves to %s", ref, source.commit_sha)
    return source
