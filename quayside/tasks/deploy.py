"""Deploy steps around the deploy core (``quayside.deploy.host_deploy`` and its neighbours):
the per-host functions (one SSH connection each; run for a group of hosts by
``quayside.tasks.fanout.fan_out``), the payload build, the artifact store and a progress
artifact."""

from __future__ import annotations

import contextvars
import logging
import os
import shutil
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from quayside.artifacts.delta import StoredPayload, get_payload, put_payload
from quayside.deploy.errors import DeployError
from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.host_rollback import rollback_host
from quayside.deploy.release_spec import ReleaseSpec, RollbackSpec
from quayside.deploy.source import release_env, run_build
from quayside.deploy.switch_back import switch_back
from quayside.errors import QuaysideError
from quayside.executors.factory import executor_for
from quayside.inventory.models import App, Host
from quayside.manifest import MANIFEST_FILENAME, Entry, Manifest, build_manifest
from quayside.release.host_report import HostReport
from quayside.scratch import BackgroundRemoval
from quayside.source.mirror import Checkout, GitMirror

log = logging.getLogger(__name__)


class HostDeployFailed(DeployError):
    """One host failed; ``report`` says at which step and why."""

    def __init__(self, report: HostReport) -> None:
        self.report = report
        super().__init__(f"{report.host} [{report.step}]: {report.message}")


class Progress:
    """A Prefect progress artifact advanced once per finished host (thread-safe), kept by a
    background thread: the artifact is created there, and updated at most every
    ``interval_s`` seconds with the newest value, so a host task never waits for the API
    (measured: the last host's update took 0.15-0.25 s while the server recorded the other
    task runs). :meth:`close` (or leaving the ``with`` block) sends the last value and waits
    for it, at most ``timeout_s``.

    Example:
        >>> with Progress(20, "git-deploy-progress-web-prod", "web/prod to v1.2") as progress:
        ...     progress.advance()  # once per finished host
    """

    def __init__(self, total: int, key: str, description: str, *, interval_s: float = 0.5) -> None:
        self.total = max(1, total)
        self.done = 0
        self.key = key
        self.description = description
        self.interval_s = interval_s
        self.artifact_id: UUID | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._wanted = 0.0
        self._closed = False
        context = contextvars.copy_context()  # the run's settings and API client
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="quayside-progress", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self) -> None:
        with self._lock:
            self.done += 1
            self._wanted = min(100.0, 100.0 * self.done / self.total)
        self._wake.set()

    def close(self, timeout_s: float = 10) -> None:
        """Send the last value and stop the thread (waits at most ``timeout_s``)."""
        with self._lock:
            self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            created = create_progress_artifact(0.0, key=self.key, description=self.description)
            self.artifact_id = created if isinstance(created, UUID) else None
        except Exception as e:  # a progress bar must never fail a deploy
            get_run_logger().warning("cannot create the progress artifact: %s", e)
        sent = 0.0
        while True:
            self._wake.wait()
            with self._lock:
                value, closed = self._wanted, self._closed
                self._wake.clear()
            if value != sent and self.artifact_id is not None:
                try:
                    update_progress_artifact(self.artifact_id, value)
                except Exception:  # best effort
                    pass
            sent = value
            if closed:
                with self._lock:
                    if self._wanted == sent:
                        return
                self._wake.set()
            elif value < 100.0:
                self._stop.wait(self.interval_s)  # hosts finishing meanwhile: one update


def _logger_line() -> Callable[[str], None]:
    logger = get_run_logger()
    return lambda line: logger.info("%s", line)


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


def return_build_dir(mirror: GitMirror, build_dir: Path, removal: BackgroundRemoval) -> None:
    """After the run: a build directory that is the mirror's lent tree (see
    :func:`build_payload`) goes back to the mirror without the manifest file written into it,
    so the next release's export changes only what git changed; any other is deleted in the
    background. Never raises: the mirror then checks out a fresh tree next time."""
    try:
        (build_dir / MANIFEST_FILENAME).unlink(missing_ok=True)
        if mirror.give_back(build_dir):
            return
    except (OSError, QuaysideError) as e:  # after the run's outcome: must not replace it
        log.warning(
            "cannot give the build tree %s back to the mirror (%s): it is deleted, and the "
            "next deploy checks out a fresh tree",
            build_dir,
            e,
        )
    removal.remove(build_dir)


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


@task(task_run_name="store {key}", cache_policy=NO_CACHE)
def store_payload(
    key: str, payload_dir: Path, manifest: Manifest, base: StoredPayload | None = None
) -> tuple[str, StoredPayload]:
    """Keep the payload in the artifact store so the release can be restored after pruning:
    whole, or as a delta against ``base`` (see ``quayside.artifacts.delta``).

    Args:
        key: the artifact key (``<app>/<env>/<release id>``).
        payload_dir: the built payload (with its manifest file).
        manifest: the payload's manifest.
        base: a stored payload to store only the difference against (``delta_base``).

    Returns:
        The artifact's location (``file://`` or ``s3://``) and what the next release of the
        app/environment may use as its delta base.

    Raises:
        quayside.errors.QuaysideError: the store refused it.

    Example:
        >>> store_payload("web/prod/20240501T120001Z-0123456789ab", Path("/tmp/b"), manifest)
    """
    from quayside.artifacts import store_from_env

    store = store_from_env()
    if base is None and store.compress and not worth_compressing(payload_dir):
        store.compress = False  # this instance only: gzip would cost CPU and save nothing
        get_run_logger().info("payload looks incompressible: stored as a plain tar")
    ref, stored = put_payload(store, key, payload_dir, manifest, base)
    if base is not None:
        get_run_logger().info(
            "payload stored as a delta of %s (%d bytes, chain depth %d)",
            base.key,
            ref.size,
            stored.depth,
        )
    return str(ref.location), stored


#: sampled for :func:`worth_compressing`: this many files, this many bytes from each
_SAMPLE_FILES = 32
_SAMPLE_BYTES = 64 * 1024


def worth_compressing(payload_dir: Path, *, ratio: float = 0.9) -> bool:
    """Whether gzip is likely to shrink the payload by more than ``1 - ratio``: the first
    bytes of up to 32 files spread over the payload (by its manifest) are compressed at gzip
    level 1. Media, archives and other already-compressed payloads say no."""
    try:
        manifest = Manifest.from_json((payload_dir / MANIFEST_FILENAME).read_text())
    except (OSError, QuaysideError):
        return True
    files = [p for p, e in manifest.items() if e.kind == "file" and e.size > 0]
    if not files:
        return True
    step = max(1, len(files) // _SAMPLE_FILES)
    raw = packed = 0
    for rel in files[::step][:_SAMPLE_FILES]:
        try:
            with open(payload_dir / rel, "rb") as handle:
                data = handle.read(_SAMPLE_BYTES)
        except OSError:
            continue
        raw += len(data)
        packed += len(zlib.compress(data, 1))
    return raw == 0 or packed < raw * ratio


def deploy_to_host(
    host_name: str,
    host: Host,
    spec: ReleaseSpec,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> HostReport:
    """Deploy one release to one host over one SSH connection: read facts, plan, stage the
    release from the previous one with only the changed files, link shared paths, hooks,
    atomic switch, health check. A host failing after the switch is switched back.

    Args:
        host_name: inventory name of the host.
        host: its inventory entry.
        spec: the release (payload, manifest, hooks, health check).
        dry_run: plan only; the report's ``plan_text`` says what would change.
        progress: advanced when the host is done.

    Returns:
        The host's report (succeeded, no_change or planned).

    Raises:
        HostDeployFailed: the host failed; ``.report`` has the step and the reason.

    Example:
        >>> fan_out("deploy", lambda h: deploy_to_host(h, inventory.hosts[h], spec), names, 20)
    """
    executor = executor_for(host_name, host)
    try:
        report = deploy_host(executor, host_name, spec, dry_run=dry_run, on_line=_logger_line())
    finally:
        executor.close()
        if progress is not None:
            progress.advance()
    logger = get_run_logger()
    if not report.ok:
        raise HostDeployFailed(report)
    logger.info(
        "%s: %s (%d bytes, %d round trips, %.2fs)",
        host_name,
        report.status if not report.message else report.message,
        report.bytes_sent,
        report.round_trips,
        report.duration_s,
    )
    return report


def switch_back_host(
    host_name: str,
    host: Host,
    deploy_root: str,
    previous: str | None,
    post_switch: list[Any],
    env: dict[str, str],
) -> str:
    """Switch a host back to its previous release (automatic rollback) in one round trip and
    re-run the post-switch hooks there.

    Args:
        host_name: inventory name of the host.
        host: its inventory entry.
        deploy_root: the host's deploy root.
        previous: the release to switch back to; None removes ``current``.
        post_switch: the post-switch hooks to re-run.
        env: their environment variables.

    Returns:
        The release now current (or ``none``).

    Raises:
        quayside.errors.HostError: the switch failed.

    Example:
        >>> switch_back_host("web-1", host, "/srv/app", "20240501T120001Z-0123456789ab", [], {})
    """
    executor = executor_for(host_name, host)
    try:
        switch_back(executor, deploy_root, previous, hooks=post_switch, env=env)
    finally:
        executor.close()
    return previous or "none"


class PayloadCache:
    """Fetches a release payload from the artifact store once, for every host that needs it."""

    def __init__(self, key: str | None, dest: Path) -> None:
        self.key = key
        self.dest = dest
        self._lock = threading.Lock()
        self._ready = False

    def __call__(self) -> Path:
        with self._lock:
            if not self._ready:
                if not self.key:
                    raise DeployError("the release is not on the host and has no stored artifact")
                from quayside.artifacts import store_from_env

                shutil.rmtree(self.dest, ignore_errors=True)
                get_payload(store_from_env(), self.key, self.dest)
                self._ready = True
        return self.dest


def rollback_on_host(
    host_name: str,
    host: Host,
    spec: RollbackSpec,
    fetch_payload: PayloadCache,
    progress: Progress | None = None,
) -> HostReport:
    """Switch one host to an earlier release (one round trip when it is still on the host;
    restored from the artifact store first when it was pruned), then post-switch hooks and
    the health check.

    Args:
        host_name: inventory name of the host.
        host: its inventory entry.
        spec: the release to switch to.
        fetch_payload: gives the stored payload when the release must be restored.
        progress: advanced when the host is done.

    Returns:
        The host's report.

    Raises:
        HostDeployFailed: the host failed; ``.report`` has the step and the reason.

    Example:
        >>> rollback_on_host("web-1", host, spec, PayloadCache(key, Path("/tmp/p")))
    """
    executor = executor_for(host_name, host)
    try:
        report = rollback_host(
            executor, host_name, spec, fetch_payload=fetch_payload, on_line=_logger_line()
        )
    finally:
        executor.close()
        if progress is not None:
            progress.advance()
    if not report.ok:
        raise HostDeployFailed(report)
    return report
