"""Rollback: switch every host of an app's environment back to an earlier recorded release,
restoring it from the artifact store where it was pruned. A rollback is itself a release."""

from __future__ import annotations

import shutil
import time
from typing import Any

from prefect import get_run_logger
from prefect.states import State
from pydantic import Field

from quayside.deploy.errors import HostsFailed
from quayside.deploy.release_spec import RollbackSpec
from quayside.deploy.summary import rollback_markdown
from quayside.errors import InputError, NotFoundError
from quayside.ledger.environments import pause_auto_triggers, resume_command
from quayside.ledger.models import Release, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import current_release, get_release, list_releases
from quayside.ledger.sole_copies import SOLE_COPY_REASON, sole_copies
from quayside.markdown_text import inline
from quayside.release.host_outcomes import failed_rows
from quayside.release_id import is_release_id
from quayside.scratch import sweep_stale
from quayside.tasks.host_tasks import rollback_on_host
from quayside.tasks.ledger import ledger_engine
from quayside.tasks.payload_store import PayloadCache
from quayside.tasks.release_flow import release_flow
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.release_lock import run_release_body
from quayside.tasks.release_progress import Progress
from quayside.tasks.release_report import artifact_key
from quayside.tasks.release_resolve import resolve_release


def release_dir_of(release: Release) -> str | None:
    """The release directory name (``<time>-<sha>``) a ledger release put on the hosts."""
    value = (release.details or {}).get("release_id")
    return value if isinstance(value, str) and is_release_id(value) else None


GIT_KINDS = (ReleaseKind.deploy, ReleaseKind.rollback)
"""The kinds that put a release directory on the hosts (config releases go their own way:
``quayside.config.publish_rollback``)."""

SERVED = (ReleaseStatus.succeeded, ReleaseStatus.rolled_back)
"""Statuses of a release that was live on the hosts (a rolled-back one served before)."""


def _newest_that_served(engine: Any, app: str, env: str, version: str) -> Release | None:
    """The newest release of ``version`` that put a release on the hosts and served there (a
    later cancelled or failed run of the same version does not hide it)."""
    for release in list_releases(engine, app, env, limit=500):
        if (
            release.version == version
            and release.status in SERVED
            and release.kind in GIT_KINDS
            and release_dir_of(release) is not None
        ):
            return release
    return None


def _interrupted_since(engine: Any, app: str, env: str, current: Release) -> Release | None:
    """The newest git release after ``current`` that changed or may have changed hosts, if
    its run died mid-release (``interrupted``); None when that newest one is anything else
    (a failed release was switched back, a cancelled one changed nothing)."""
    for release in list_releases(engine, app, env, limit=50, with_hosts=False):
        if release.id <= current.id:
            return None
        if release.kind not in GIT_KINDS or release.status in (
            ReleaseStatus.cancelled,
            ReleaseStatus.failed,
        ):
            continue
        return release if release.status is ReleaseStatus.interrupted else None
    return None


def choose_target(engine: Any, app: str, env: str, to: str | None) -> tuple[Release, Release]:
    """The current release and the one to roll back to.

    ``to=None`` undoes the newest release: after one whose run died mid-release
    (``interrupted``, the fleet maybe split) that is going back to the current release, the one
    that served before it (returned as ``(interrupted, current)``); a rollback is undone by
    going back to the release it replaced; otherwise the newest succeeded release older than
    the current one that put a different release directory on the hosts is chosen. ``to``
    names a ledger id or a version (the newest release of that version that served).

    Raises:
        NotFoundError: nothing is deployed, or no such / no earlier release.
        InputError: the named release is not a deploy of this app/env with a release dir.
    """
    current = current_release(engine, app, env, kinds=GIT_KINDS)
    if current is None:
        raise NotFoundError(
            f"nothing is deployed in {app}/{env} yet", hint="deploy a release first"
        )
    here = release_dir_of(current)
    split = _interrupted_since(engine, app, env, current) if to is None else None
    if split is not None:  # undo the interrupted release: back to what served before it
        return split, current
    if to is None and current.kind is ReleaseKind.rollback and current.rollback_of_id:
        undone = get_release(engine, current.rollback_of_id)  # rolling back a rollback: undo it
        if release_dir_of(undone) not in (None, here):
            return current, undone
    if to is None:
        for older in list_releases(engine, app, env, limit=200, status=ReleaseStatus.succeeded):
            if older.id < current.id and release_dir_of(older) not in (None, here):
                return current, older
        raise NotFoundError(
            f"{app}/{env} has no earlier successful release to roll back to",
            hint=f"name one with --to (see `quayside releases {app} {env}`)",
        )
    text = to.strip()
    if text.isdigit():
        dest = get_release(engine, int(text))
        if dest.app_name != app or dest.env_name != env:
            raise InputError(f"release {text} is a release of {dest.app_name}/{dest.env_name}")
    else:
        dest = _newest_that_served(engine, app, env, text) or get_release(
            engine, text, app=app, env=env
        )
    if release_dir_of(dest) is None or dest.kind not in GIT_KINDS:
        raise InputError(
            f"release {dest.id} ({dest.version}) did not put a release on the hosts",
            hint=f"pick a deployed release (see `quayside releases {app} {env}`)",
        )
    if dest.status not in SERVED:
        raise InputError(
            f"release {dest.id} ({dest.version}) is {dest.status}; only a release that "
            "succeeded can be rolled back to"
        )
    return current, dest


@release_flow(
    "rollback",
    "Switch every host back to an earlier release (restored from the artifact "
    "store if pruned); pauses automatic triggers for the app/env.",
)
async def rollback(
    app: str = Field(description="app name from quayside.yaml"),
    env: str = Field(description="environment of the app"),
    to: str | None = Field(
        None, description="ledger release id or version (default: the previous release)"
    ),
    requested_by: str = Field("ui", description="who asked for this rollback"),
    lock_wait_s: float = Field(
        0, ge=0, le=3600, description="wait this long for another deploy's lock (0 = refuse)"
    ),
    approval: bool = Field(
        False,
        description="ask for approval even where the environment's policy needs none for a "
        "rollback (an approval the policy requires is never skipped)",
    ),
) -> dict[str, Any] | State[Any]:
    """Roll ``app``/``env`` back to an earlier release.

    Every host switches ``current`` in parallel - one round trip where the release is still
    on the host; where it was pruned, it is first restored from the artifact store. Then the
    post-switch hooks and the health check run. The rollback is recorded as a release of kind
    ``rollback`` (so it can itself be rolled back) and automatic triggers of the app/env are
    paused until someone resumes them.

    Args:
        app: app name from quayside.yaml.
        env: environment of the app.
        to: a ledger release id or version label; default the previous successful release.
        requested_by: recorded in the ledger.
        lock_wait_s: 0 refuses at once when a deploy of app/env runs; else wait so long.
        approval: ask for approval even where the policy needs none for a rollback. Where the
            environment's policy requires approval, a rollback waits for it too, unless the
            policy says ``rollback: false`` (on-call emergencies).

    Returns:
        ``{"release": ledger id, "to": ledger id, "release_id": dir, "hosts": {...}}``.

    Raises:
        quayside.errors.NotFoundError: nothing deployed, no earlier release, unknown names.
        prefect.exceptions.CancelledRun: (called in-process) not run: a deploy of this app/env
            holds the lock; recorded as a ``cancelled`` rollback, ``summary.result == "not
            run"``. Through a worker the run ends ``Cancelled``.
        quayside.deploy.errors.HostsFailed: some hosts could not be switched.
        quayside.tasks.approval.ApprovalRejected: the approval was refused (nothing was switched).

    Example:
        >>> asyncio.run(rollback("web", "prod"))  # to the previous release (an async flow)
        >>> asyncio.run(rollback("web", "prod", to="v1.4.1"))
    """
    return await run_release_body(
        roll_back,
        app=app,
        env=env,
        to=to,
        requested_by=requested_by,
        lock_wait_s=lock_wait_s,
        approval=approval,
    )


def _summary(hosts: int, failed: int, to: int, protected: frozenset[str]) -> dict[str, Any]:
    """The rollback's ledger summary; ``protected`` lists the release ids its prune was told
    to keep (the ledger's sole copies, read under the lock), whether or not a host holds them:
    the hosts answer before they prune, so what each keeps is not read back (a deploy's
    ``kept`` is, from the hosts' facts)."""
    summary: dict[str, Any] = {"hosts": hosts, "failed": failed, "to": to}
    if protected:
        summary["protected"] = {"releases": sorted(protected), "why": SOLE_COPY_REASON}
    return summary


def roll_back(
    *,
    app: str,
    env: str,
    to: str | None,
    requested_by: str,
    lock_wait_s: float,
    approval: bool,
) -> dict[str, Any]:
    """The body of :func:`rollback`, run in a thread by
    :func:`quayside.tasks.sync_body.run_sync_body`."""
    logger = get_run_logger()
    resolved = resolve_release({"app": app, "env": env}, requested_by)
    settings, requested_by, target = resolved.settings, resolved.requested_by, resolved.must_target
    current, dest = choose_target(ledger_engine(), app, env, to)
    rid = release_dir_of(dest)
    assert rid is not None
    details = dest.details or {}
    request = ReleaseRequest(
        app,
        env,
        ReleaseKind.rollback,
        version=dest.version,
        requested_by=requested_by,
        shown=f"rollback to {dest.version}",
        fields={
            "ref": dest.ref,
            "commit_sha": dest.commit_sha,
            "artifact_location": dest.artifact_location,
            "manifest_digest": dest.manifest_digest,
            "rollback_of_id": current.id,
        },
        details={
            "release_id": rid,
            "artifact_key": details.get("artifact_key"),
            "target_release": dest.id,
        },
        lock_wait_s=lock_wait_s,
    )
    with ReleaseLifecycle(request, target) as life:
        life.approve(  # before the lock: a pending approval holds nothing
            lambda: rollback_markdown(
                app=app,
                env=env,
                current=(current.id, current.version, current.commit_sha),
                target=(dest.id, dest.version, dest.commit_sha),
                release_dir=rid,
                hosts=target.host_names,
                requested_by=requested_by,
            ),
            asked=approval,
            policy_kind="rollback",
        )
        life.lock()
        row = life.start()
        # read under the lock; the hosts prune in the background, after they answer
        protected = sole_copies(life.engine, app, env)
        if protected:
            logger.info(
                "not pruned where the hosts have them: %s - %s",
                ", ".join(sorted(protected)),
                SOLE_COPY_REASON,
            )

        def pause(db: Any) -> None:
            pause_auto_triggers(
                db,
                app,
                env,
                actor=requested_by,
                reason=f"rolled back from {current.version} to {dest.version} "
                f"(rollback release {row}); resume when the fix is deployed",
            )
            logger.info(
                "automatic triggers of %s/%s are paused; once the fix is deployed: %s",
                app,
                env,
                resume_command(app, env),
            )

        logger.info(
            "rolling %s/%s back from %s (release %d) to %s (release %d, %s)",
            app,
            env,
            current.version,
            current.id,
            dest.version,
            dest.id,
            rid,
        )
        sweep_stale(settings.home / "restore")  # what crashed runs left
        cache_dir = settings.home / "restore" / f"{rid}-{time.monotonic_ns()}"
        life.callback(shutil.rmtree, cache_dir, True)
        spec = RollbackSpec(
            app=app,
            env=env,
            release_id=rid,
            commit_sha=dest.commit_sha or "",
            ref=dest.ref or "",
            deploy_root=target.deploy_root,
            shared_paths=tuple(target.app.shared_paths),
            hooks=target.app.hooks,
            health=target.app.health_check,
            variables=dict(target.env.variables),
            keep_releases=target.app.keep_releases,
            protected=protected,
        )
        fetch = PayloadCache(details.get("artifact_key"), cache_dir / "payload")
        host_map = dict(target.hosts)
        progress = Progress(
            len(host_map),
            artifact_key("rollback-progress", app, env),
            f"rollback {inline(app)}/{inline(env)}",
        )
        life.show_hosts(
            artifact_key("rollback", app, env),
            f"rollback of {inline(app)}/{inline(env)} to {inline(dest.version)}",
        )
        paused = False
        try:
            applied = life.apply(
                target.host_names,
                lambda h: rollback_on_host(h, host_map[h], spec, fetch, progress),
                action="rollback",
            )
            reports, bad = applied.reports, applied.bad
            moved = f"from {current.version} (release {current.id}) to {dest.version} "
            moved += f"(release {dest.id}, {rid})"
            done = len(reports) - len(bad)
            text = f"rolled back {moved} on {done} of {len(reports)} host(s)"
            text += f"; automatic triggers paused until {resume_command(app, env)}"
            life.finish_applied(  # the outcome and the trigger pause: one transaction
                applied,
                text,
                event="rolled_back",
                any_failure_fails=True,  # a fleet split between two releases is no rollback
                summary=_summary(len(reports), len(bad), dest.id, protected),
                also=pause,
            )
            paused = True
        finally:
            progress.close()  # its last update went out while the ledger was written
            if not paused:
                pause(life.engine)
    if bad:
        raise HostsFailed(
            f"rollback to {dest.version}: {len(bad)} of {len(reports)} host(s) failed",
            failed_rows(reports),
        )
    return {
        "release": row,
        "to": dest.id,
        "release_id": rid,
        "hosts": {r.host: r.status for r in reports},
        "restored": [r.host for r in reports if "restored" in r.message],
    }
