"""Builds a git release's payload from the mirror and gives the tree back after the run."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from quayside.deploy.source import release_env, run_build
from quayside.errors import QuaysideError
from quayside.inventory.models import App
from quayside.manifest import MANIFEST_FILENAME, Entry, Manifest, build_manifest
from quayside.scratch import BackgroundRemoval
from quayside.source.mirror import Checkout, GitMirror

log = logging.getLogger(__name__)


@task(task_run_name="build {app_name}@{commit_sha:.12}", cache_policy=NO_CACHE)
def build_payload(
    mirror: GitMirror,
    app_name: str,
    app: App,
    env_name: str,
    release_id: str,
    commit_sha: str,
    ref: str,
    dest: Path,
    remembered: TreeManifest | None = None,
) -> Manifest:
    """Export the tree at ``commit_sha`` into ``dest``, run the app's build commands there and
    record the payload's content manifest (written to ``dest`` as the manifest file).

    Args:
        mirror: the synced mirror of the app's repository.
        app_name: app name.
        app: the app's inventory entry (build commands, build timeout).
        env_name: environment name.
        release_id: the new release id.
        commit_sha: the resolved commit.
        ref: the ref as given (QUAYSIDE_REF).
        dest: an absent or empty build directory.
        remembered: what :func:`remembered_manifest` returns, if the caller read it already
            (read here otherwise).

    Returns:
        The payload's manifest.

    Raises:
        quayside.deploy.errors.BuildError: a build command failed or timed out.
        quayside.errors.InputError: the tree holds an unsafe path or a special file.

    Example:
        >>> build_payload(mirror, "web", app, "prod", rid, sha, "v1.2.0", Path("/tmp/b"))
    """
    logger = get_run_logger()
    if app.build:
        mirror.export(commit_sha, dest)  # a build writes into the tree: a private copy
        known = None
    else:
        if remembered is None:
            remembered = remembered_manifest(mirror)
        # the mirror's checked-out tree itself, lent for the run (return_build_dir)
        known = _known_entries(remembered, mirror.export_linked(commit_sha, dest, lend=True))
    if app.build:
        env = release_env(
            app=app_name, env=env_name, release_id=release_id, commit_sha=commit_sha, ref=ref
        )
        logger.info("building: %d command(s), timeout %gs", len(app.build), app.build_timeout_s)
        run_build(
            app.build,
            dest,
            env,
            timeout_s=app.build_timeout_s,
            on_line=lambda line: logger.info("build: %s", line),
        )
    (dest / MANIFEST_FILENAME).unlink(missing_ok=True)  # never written through a hard link
    manifest = build_manifest(dest, known=known)
    (dest / MANIFEST_FILENAME).write_text(manifest.to_json())
    if not app.build:
        _remember_manifest(mirror, commit_sha, manifest)
    logger.info(
        "payload: %d paths, %d bytes, digest %s",
        len(manifest),
        manifest.total_bytes,
        manifest.digest()[:12],
    )
    return manifest


#: in the mirror's tree cache: the commit's sha, a newline, its payload manifest's JSON
_TREE_MANIFEST = "manifest"


def return_build_dir(
    mirror: GitMirror, build_dir: Path, removal: BackgroundRemoval, *also: Path
) -> None:
    """After the run: a build directory that is the mirror's lent tree (see
    :func:`build_payload`) goes back to the mirror without the manifest file written into it,
    so the next release's export changes only what git changed; any other is deleted in the
    background. ``also`` (the stream directory, then the owner file) is deleted after it, by
    the same process: a run killed meanwhile leaves nothing without its owner file. Never
    raises: the mirror then checks out a fresh tree next time."""
    try:
        (build_dir / MANIFEST_FILENAME).unlink(missing_ok=True)
        if mirror.give_back(build_dir):
            removal.remove(*also)
            return
    except (OSError, QuaysideError) as e:  # after the run's outcome: must not replace it
        log.warning(
            "cannot give the build tree %s back to the mirror (%s): it is deleted, and the "
            "next deploy checks out a fresh tree",
            build_dir,
            e,
        )
    removal.remove(build_dir, *also)


def _known_entries(remembered: TreeManifest | None, checkout: Checkout) -> dict[str, Entry] | None:
    """Entries of the files that did not change since the commit the mirror's cached tree
    held (from that commit's remembered manifest), or None."""
    if checkout.previous is None or checkout.changed is None or remembered is None:
        return None
    if remembered.commit != checkout.previous:
        return None
    known = dict(remembered.manifest.entries)
    for path in checkout.changed:
        known.pop(path, None)
    return known


@dataclass(frozen=True)
class TreeManifest:
    """The payload manifest of the commit the mirror's cached tree holds."""

    commit: str
    manifest: Manifest


def remembered_manifest(mirror: GitMirror) -> TreeManifest | None:
    """The payload manifest of the commit the mirror's cached tree holds (the last one built
    without a build step), if it was remembered: likely what the hosts run now."""
    try:
        commit, _, text = (mirror.tree_cache / _TREE_MANIFEST).read_text().partition("\n")
        return TreeManifest(commit, Manifest.from_json(text, keep_text=True))
    except (OSError, ValueError, QuaysideError):
        return None


def _remember_manifest(mirror: GitMirror, commit_sha: str, manifest: Manifest) -> None:
    """Keep the payload manifest of the commit the mirror's cached tree now holds."""
    target = mirror.tree_cache / _TREE_MANIFEST
    tmp = target.with_name(f".{_TREE_MANIFEST}.{os.getpid()}.{threading.get_ident()}")
    try:
        tmp.write_text(f"{commit_sha}\n{manifest.to_json()}")
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
