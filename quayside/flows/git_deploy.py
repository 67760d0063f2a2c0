"""Git deploy: a git ref -> versioned release directories on SSH hosts, switched atomically,
in batches, with hooks, health checks and automatic rollback past a failure threshold."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from quayside.artifacts.delta import StoredPayload, delta_base, recall, remember
from quayside.auth.policy import effective_policy
from quayside.deploy import expected_facts
from quayside.deploy.engine import INLINE_MAX_BYTES, HostReport, ReleaseSpec, prepare_plans
from quayside.deploy.errors import HostsFailed, ThresholdExceeded
from quayside.deploy.policy import exceeded, failure_limit
from quayside.deploy.scripts import host_deploy_root
from quayside.deploy.summary import approval_markdown
from quayside.errors import QuaysideError
from quayside.fanout import batch_size, batches
from quayside.inventory import load_inventory
from quayside.inventory.resolve import Target, resolve_target
from quayside.ledger.models import HostStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.releases import (
    HostOutcome,
    current_release,
    list_releases,
    mark_running,
    record_host_outcomes,
    start_release,
)
from quayside.manifest import Manifest, human_bytes
from quayside.markdown_text import code, code_block, inline
from quayside.release_id import new_release_id
from quayside.scratch import BackgroundRemoval, sweep_stale
from quayside.settings import Settings, load_settings
from quayside.source.mirror import GitMirror
from quayside.tasks.background import InBackground
from quayside.tasks.deploy import (
    Progress,
    build_payload,
    deploy_to_host,
    remembered_manifest,
    return_build_dir,
    store_payload,
    switch_back_host,
)
from quayside.tasks.fanout import fan_out
from quayside.tasks.ledger import current_flow_run_id, ledger_engine
from quayside.tasks.params import opaque
from quayside.tasks.release_finish import Announcement, finish_quietly, finish_release_run
from quayside.tasks.release_lock import NotRun, run_release_body, take_release_lock
from quayside.tasks.release_report import artifact_key, publish_host_table, reports_of
from quayside.tasks.run_authority import confirm_run_authority
from quayside.tasks.source import resolve_ref

#: environment variable: changes up to this many bytes travel inline (a tar in memory, over
#: the executor's SSH session); larger ones as a tar file streamed through OpenSSH
INLINE_ENV = "QUAYSIDE_DEPLOY_INLINE_MAX_BYTES"


def _approval_summary(
    mirror: GitMirror, target: Target, version: str, sha: str, requested_by: str
) -> str:
    current = current_release(ledger_engine(), target.app_name, target.env_name)
    old = current.commit_sha if current is not None else None
    try:
        commits = mirror.log(old, sha)
        changed = mirror.changed_files(old, sha)
    except QuaysideError:  # the old commit is not in this repository (any more)
        commits, changed, old = mirror.log(None, sha, limit=5), [], None
    return approval_markdown(
        app=target.app_name,
        env=target.env_name,
        version=version,
        commit_sha=sha,
        current_version=current.version if current is not None else None,
        current_sha=old,
        commits=commits,
        changed_files=changed,
        hosts=target.host_names,
        requested_by=requested_by,
    )


def _inline_max() -> int:
    value = os.environ.get(INLINE_ENV)
    return int(value) if value and value.isdigit() else INLINE_MAX_BYTES


def _build_dir(settings: Settings, app: str, env: str, release_id: str) -> Path:
    path = settings.home / "builds" / f"{app}-{env}-{release_id}-{time.monotonic_ns()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent)  # what crashed runs left
    return path


_LEDGER_STATUS = {
    "succeeded": HostStatus.succeeded,
    "no_change": HostStatus.succeeded,
    "failed": HostStatus.failed,
    "rolled_back": HostStatus.rolled_back,
}


@flow(
    name="git-deploy",
    task_runner=ThreadPoolTaskRunner(max_workers=50),  # type: ignore[arg-type]
    description="Deploy a git ref to an app's environment: versioned release directories, "
    "atomic switch, batches, health checks, automatic rollback past the failure threshold.",
)
async def git_deploy(
    app: str = Field(description="app name from quayside.yaml"),
    env: str = Field(description="environment of the app"),
    ref: str = Field(description="git tag, branch or commit sha"),
    hosts: list[str] | None = Field(None, description="only these hosts of the environment"),
    batch: int | str | None = Field(
        None, description="hosts per batch, N or 'N%' (default: the environment's)"
    ),
    dry_run: bool = Field(False, description="show per host what would change; touch nothing"),
    requested_by: str = Field("ui", description="who asked for this deploy"),
    approval: bool = Field(
        False,
        description="ask for approval even where the environment's policy needs none "
        "(an approval the policy requires is never skipped)",
    ),
    lock_wait_s: float = Field(
        0, ge=0, le=3600, description="wait this long for another deploy's lock (0 = refuse)"
    ),
) -> dict[str, Any] | State[Any]:
    """Deploy ``ref`` of ``app`` to ``env``.

    Resolves the ref in the app's mirror, exports and builds the payload, keeps it in the
    artifact store, then per host (one task, one SSH connection): read facts, stage the new
    release from the previous one sending only changed files, link shared paths, pre-switch
    hooks, atomic switch, post-switch hooks, health check. Hosts go in batches; past the
    failure threshold no new batch starts and every switched host is switched back.

    Ledger: one ``deploy`` release per run (``awaiting_approval`` while an approval is
    pending). It ends ``succeeded`` when the release is live (failed hosts below the threshold
    are listed in its summary), ``failed`` when the build failed or the threshold was passed
    (switched hosts rolled back, their outcome ``rolled_back``), and ``cancelled`` with
    ``summary.result == "no change"`` when every host already had this content (or
    ``"not run"`` when another run held the deploy lock) - so a
    no-change re-run never becomes the "previous release" a rollback goes to. A dry run
    writes nothing to the ledger; its per-host plan is a Markdown artifact and the return value.

    Args:
        app: app name from quayside.yaml.
        env: environment of the app.
        ref: git tag, branch or commit sha.
        hosts: only these hosts of the environment (default all).
        batch: hosts per batch, ``N`` or ``"N%"`` (default the environment's ``batch``).
        dry_run: resolve, build and plan; report per host what would change. Nothing on the
            hosts changes, no lock is taken and nothing is written to the ledger.
        requested_by: recorded in the ledger and shown to approvers.
        approval: ask for approval even where the environment's policy requires none (the
            environment's policy, or one MASTER, no self-approval). A required approval is
            asked for whatever this says.
        lock_wait_s: 0 refuses at once when another deploy of app/env runs; else wait so long.

    A scheduled deploy's approval is asked when it is submitted; approved by the time the run
    starts, it does not wait at all. A run submitted through a trigger checks first that its
    submitter still has the right (and is recorded as requested by them).

    Returns:
        ``{"release": ledger id, "release_id": dir name, "commit": sha, "result": "deployed" |
        "no change" | "planned", "hosts": {host: status}, "failed": [...]}``.

    Raises:
        quayside.errors.InputError: an unsafe ref (nothing was run).
        quayside.errors.NotFoundError: unknown app, environment, host or ref.
        prefect.exceptions.CancelledRun: (called in-process) not run: another deploy of this
            app/env holds the lock; the refusal is recorded as a ``cancelled`` release with
            ``summary.result == "not run"``. Through a worker the run ends ``Cancelled``.
        quayside.deploy.errors.BuildError: the build failed.
        quayside.deploy.errors.ThresholdExceeded: too many hosts failed; switched hosts were
            rolled back.

    Example:
        >>> asyncio.run(git_deploy("web", "prod", "v1.4.2", batch="25%"))  # an async flow
    """
    return await run_release_body(
        deploy_release,
        app=app,
        env=env,
        ref=ref,
        hosts=hosts,
        batch=batch,
        dry_run=dry_run,
        requested_by=requested_by,
        approval=approval,
        lock_wait_s=lock_wait_s,
    )


def deploy_release(
    *,
    app: str,
    env: str,
    ref: str,
    hosts: list[str] | None,
    batch: int | str | None,
    dry_run: bool,
    requested_by: str,
    approval: bool,
    lock_wait_s: float,
) -> dict[str, Any]:
    """The body of :func:`git_deploy`, run in a thread by
    :func:`quayside.tasks.sync_body.run_sync_body`."""
    logger = get_run_logger()
    settings = load_settings()
    inventory = load_inventory(settings.inventory_path)
    requested_by = confirm_run_authority(
        inventory, {"app": app, "env": env, "hosts": hosts}, requested_by
    )
    target = resolve_target(inventory, app, env, hosts)
    names = target.host_names
    size = batch_size(batch if batch is not None else target.env.batch, len(names))
    limit = failure_limit(target.env.failure_threshold, len(names))
    for name in names:
        host_deploy_root(target.deploy_root, name)  # refuse a bad root before anything runs

    source = resolve_ref(settings.mirrors_dir, target.app.repo, ref, app)
    sha = source.commit_sha
    release_id = new_release_id(sha)
    engine = ledger_engine()
    run_id = current_flow_run_id()
    run_name = flow_run.get_name() or "local"
    holder = f"{requested_by} (flow run {run_name})"

    if dry_run:
        return _dry_run(target, source.mirror, ref, sha, release_id, settings)

    def record(**fields: Any) -> int:
        """This run's ledger release (one per run, whichever step creates it)."""
        row = start_release(
            engine,
            app,
            env,
            ReleaseKind.deploy,
            requested_by=requested_by,
            version=ref,
            ref=ref,
            commit_sha=sha,
            flow_run_id=run_id,
            **fields,
        )
        return int(row.id)

    key = f"{app}/{env}/{release_id}"
    location = _store_location(key)
    release_row: int | None = None

    def failed(why: str) -> Announcement:
        return Announcement(app, env, "failed", ref, requested_by, inline(why))

    policy = effective_policy(target.env.approval, asked=approval)
    if policy is not None:
        from quayside.tasks.approval import (
            approval_gate,  # the approvals module; imported when needed
        )

        # the gate suspends the run and Prefect runs the flow again from the top on resume:
        # reuse the release row (and release id) this run created before suspending
        waiting = _waiting_release(engine, app, env, run_id)
        if waiting is not None:
            release_row = waiting.id
            release_id = (waiting.details or {}).get("release_id") or release_id
            key = f"{app}/{env}/{release_id}"
            location = _store_location(key)
        else:
            release_row = record(
                artifact_location=location,
                status=ReleaseStatus.awaiting_approval,
                details={"release_id": release_id, "artifact_key": key},
            )
        summary = _approval_summary(source.mirror, target, ref, sha, requested_by)
        try:
            approver = approval_gate(
                app=app,
                env=env,
                version=ref,
                summary_markdown=summary,
                requested_by=requested_by,
                policy=policy,
                release_id=release_row,
            )
        except Exception:  # rejected or expired; a suspension (BaseException) passes through
            # the gate has told the channels; the release only ends
            finish_quietly(engine, release_row, ReleaseStatus.cancelled, "not approved")
            raise
        logger.info("approved by %s", approver)

    def refused() -> int:
        if release_row is not None:
            return release_row
        return record(details={"release_id": release_id, "step": "lock"})

    with ExitStack() as stack:
        try:
            take_release_lock(
                stack,
                engine,
                app,
                env,
                holder=holder,
                flow_run_id=run_id,
                version=ref,
                wait_s=lock_wait_s,
                record=refused,
            )
        except NotRun:
            raise
        except BaseException as e:  # the ledger failed: the release ends failed
            why = (str(e) or type(e).__name__).splitlines()[0]
            finish_quietly(engine, release_row, ReleaseStatus.failed, f"lock: {why}")
            raise
        build_dir = _build_dir(settings, app, env, release_id)
        # the mirror's tree goes back to it; anything else is deleted by an rm process that
        # may outlive the run (measured: deleting it while the run wrote its last ledger rows
        # slowed those writes)
        scratch = BackgroundRemoval()
        stack.callback(scratch.remove, stream_dir_of(build_dir))
        stack.callback(return_build_dir, source.mirror, build_dir, scratch)
        # what the hosts probably run (read before the build replaces it): a host holding
        # exactly this manifest need not send it back with its facts
        remembered = None if target.app.build else remembered_manifest(source.mirror)
        known = remembered.manifest if remembered is not None else None
        try:
            manifest = build_payload(
                source.mirror,
                app,
                target.app,
                env,
                release_id,
                sha,
                ref,
                build_dir,
                opaque(remembered),
            )
        except BaseException as e:
            if release_row is None:
                release_row = record(details={"release_id": release_id, "step": "build"})
            finish_quietly(
                engine, release_row, ReleaseStatus.failed, f"build: {e}", failed(f"build: {e}")
            )
            raise
        digest = manifest.with_shared(tuple(target.app.shared_paths)).digest()
        if release_row is None:
            release_row = record(
                artifact_location=location,
                manifest_digest=digest,
                details={"release_id": release_id, "artifact_key": key},
            )
        try:
            mark_running(engine, release_row, actor=requested_by)
            expected = expected_facts.load(_host_facts_path(settings, app, env))
            spec = _spec(target, ref, sha, release_id, build_dir, manifest, known, expected)
            base = _delta_base(manifest, recall(_payload_index(settings, app, env), known))
            progress_key = artifact_key("git-deploy-progress", app, env)
            title = f"{inline(app)}/{inline(env)} to {inline(ref)}"
            with Progress(len(target.host_names), progress_key, title) as bar:
                # closed last: the final progress update goes out while the ledger is written
                return _deploy(
                    target, ref, sha, spec, release_row, key, size, limit, base, settings, bar,
                    actor=requested_by,
                )  # fmt: skip
        except BaseException as e:
            why = (str(e) or type(e).__name__).splitlines()[0]
            finish_quietly(engine, release_row, ReleaseStatus.failed, why, failed(why))
            raise


def _payload_index(settings: Settings, app: str, env: str) -> Path:
    """Where the last stored payload of app/env is remembered (the next delta's base)."""
    return settings.payloads_dir / app / f"{env}.json"


def _host_facts_path(settings: Settings, app: str, env: str) -> Path:
    """Where each host's facts after the last deploy of app/env are kept."""
    return settings.host_facts_dir / app / f"{env}.json"


def _delta_base(manifest: Manifest, candidate: StoredPayload | None) -> StoredPayload | None:
    """The stored payload to keep this one as a delta of, if that is worth it."""
    if candidate is None:
        return None
    try:
        from quayside.artifacts import store_from_env

        return delta_base(store_from_env(), manifest, candidate)
    except Exception as e:  # the store is unavailable: _deploy reports it when storing
        get_run_logger().warning("cannot use %s as a delta base: %s", candidate.key, e)
        return None


def _waiting_release(engine: Any, app: str, env: str, run_id: str | None) -> Any:
    """The release this flow run created before an approval suspended it, if any."""
    if run_id is None:
        return None
    for row in list_releases(engine, app, env, limit=50, status=ReleaseStatus.awaiting_approval):
        if row.flow_run_id == run_id:
            return row
    return None


def _store_location(key: str) -> str | None:
    """Where the payload will be kept (None if the artifact store is not available)."""
    try:
        from quayside.artifacts import store_from_env

        return str(store_from_env().location(key))
    except Exception as e:  # ImportError or a store configuration error
        get_run_logger().warning("artifact store unavailable: %s", e)
        return None


def _spec(
    target: Target,
    ref: str,
    sha: str,
    release_id: str,
    payload: Path,
    manifest: Any,
    known: Manifest | None = None,
    expected: dict[str, str] | None = None,
) -> ReleaseSpec:
    shared = tuple(target.app.shared_paths)
    return ReleaseSpec(
        app=target.app_name,
        env=target.env_name,
        release_id=release_id,
        commit_sha=sha,
        ref=ref,
        payload_dir=payload,
        manifest=manifest,
        deploy_root=target.deploy_root,
        shared_paths=tuple(target.app.shared_paths),
        keep_releases=target.app.keep_releases,
        hooks=target.app.hooks,
        health=target.app.health_check,
        variables=dict(target.env.variables),
        inline_max_bytes=_inline_max(),
        known_manifest=known.with_shared(shared) if known is not None else None,
        expected_facts=expected or {},
        scratch_dir=stream_dir_of(payload),
    )


def stream_dir_of(build_dir: Path) -> Path:
    """Where the deploy of ``build_dir`` writes its large tar streams (removed with it)."""
    return build_dir.with_name(build_dir.name + ".stream")


def _dry_run(
    target: Target, mirror: GitMirror, ref: str, sha: str, release_id: str, settings: Settings
) -> dict[str, Any]:
    logger = get_run_logger()
    build_dir = _build_dir(settings, target.app_name, target.env_name, release_id)
    try:
        manifest = build_payload(
            mirror,
            target.app_name,
            target.app,
            target.env_name,
            release_id,
            sha,
            ref,
            build_dir,
        )
        spec = _spec(target, ref, sha, release_id, build_dir, manifest)
        result = fan_out(
            "plan",
            lambda h: deploy_to_host(h, dict(target.hosts)[h], spec, dry_run=True),
            target.host_names,
            target.env.max_parallel,
        )
    finally:
        return_build_dir(mirror, build_dir, BackgroundRemoval())
    reports = reports_of(result)
    where = f"{inline(target.app_name)}/{inline(target.env_name)}"
    lines = [f"# Dry run: {where} to {inline(ref)} ({code(sha[:12])})", ""]
    for r in reports:
        text = r.plan_text if r.status == "planned" else f"cannot plan: [{r.step}] {r.message}"
        lines += [f"## {inline(r.host)}", "", code_block(text or ""), ""]
        logger.info("%s (dry run):\n%s", r.host, text)
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("git-deploy-plan", target.app_name, target.env_name),
        description=f"dry run of {where} to {inline(ref)}",
    )
    return {
        "release": None,
        "release_id": release_id,
        "commit": sha,
        "result": "planned",
        "hosts": {r.host: r.plan_text if r.status == "planned" else r.message for r in reports},
        "failed": [r.host for r in reports if not r.ok],
    }


def _deploy(
    target: Target,
    ref: str,
    sha: str,
    spec: ReleaseSpec,
    release_row: int,
    key: str,
    size: int,
    limit: int,
    base: StoredPayload | None,
    settings: Settings,
    progress: Progress,
    *,
    actor: str,
) -> dict[str, Any]:
    logger = get_run_logger()
    engine = ledger_engine()
    app, env = target.app_name, target.env_name
    release_id, manifest = spec.release_id, spec.manifest
    host_map = dict(target.hosts)
    names = target.host_names
    logger.info(
        "release %s (%s): %d host(s) in batches of %d, %d failure(s) tolerated",
        release_id,
        human_bytes(manifest.total_bytes),
        len(names),
        size,
        limit,
    )
    reports: list[HostReport] = []
    failed = 0
    stopped = False
    # a delta (a few changed files) is stored alongside the hosts; a whole payload after
    # them, as packing it competes with the host sessions for the CPU and must never delay
    # a switch (the ledger work below overlaps it)
    stored: PrefectFuture[tuple[str, StoredPayload]] | None = None
    if base is not None:
        stored = store_payload.submit(key, spec.payload_dir, opaque(manifest), opaque(base))
    prepare_plans(spec, names)  # once per distinct facts, before the host tasks compete
    for number, group in enumerate(batches(names, size), start=1):
        result = fan_out(
            f"deploy batch {number}" if size < len(names) else "deploy",
            lambda h: deploy_to_host(h, host_map[h], spec, progress=progress),
            group,
            target.env.max_parallel,
        )
        batch_reports = reports_of(result)
        reports += batch_reports
        record_host_outcomes(  # the batch's host rows: one transaction
            engine,
            release_row,
            [
                HostOutcome(
                    r.host,
                    _LEDGER_STATUS[r.status],
                    step=r.step,
                    message=r.message or None,
                    bytes_sent=r.bytes_sent,
                    duration_s=r.duration_s,
                )
                for r in batch_reports
            ],
        )
        failed += sum(1 for r in batch_reports if not r.ok)
        if exceeded(failed, limit):
            logger.error(
                "batch %d: %d host(s) failed, %d tolerated: stopping", number, failed, limit
            )
            stopped = True
            break

    if stored is None:
        stored = store_payload.submit(key, spec.payload_dir, opaque(manifest), None)
    facts_path = _host_facts_path(settings, app, env)
    if stopped:  # switched hosts go back: what they look like is for the next deploy to read
        expected_facts.save(facts_path, spec.expected_facts, {}, forget=names)
    else:
        expected_facts.save(
            facts_path,
            spec.expected_facts,
            {r.host: r.facts_after for r in reports if r.ok and r.facts_after is not None},
            forget=[r.host for r in reports if not r.ok],
        )
    done = {r.host for r in reports}
    skipped = [h for h in names if h not in done]
    # the table artifact goes out while the ledger is written (joined before the end)
    publishing = None if stopped else InBackground(_publish, target, ref, reports, skipped)
    if skipped:
        record_host_outcomes(
            engine,
            release_row,
            [HostOutcome(h, HostStatus.skipped, step="not started") for h in skipped],
        )

    try:
        location, kept = stored.result()
        remember(_payload_index(settings, app, env), kept)
    except Exception as e:  # the deploy stands; a restore after pruning will not be possible
        location = None
        logger.warning("could not keep the payload in the artifact store: %s", e)

    if stopped:
        reports = _roll_back_switched(target, spec, reports, release_row)
        _publish(target, ref, reports, skipped)
        rows = [(r.host, r.step, r.message) for r in reports if r.status == "failed"]
        error = ThresholdExceeded(
            f"{failed} of {len(names)} host(s) failed ({limit} tolerated): stopped and switched "
            f"every switched host back to its previous release",
            rows,
        )
        finish_release_run(
            engine,
            release_row,
            ReleaseStatus.failed,
            summary={"failed": len(rows), "hosts": len(names), "rolled_back": True},
            details={"artifact_location": location, "failed_hosts": [h for h, _, _ in rows]},
            announce=Announcement(
                app, env, "rolled_back", ref, actor, _outcome_text(str(error), rows)
            ),
        )
        raise error

    assert publishing is not None
    bad = [r for r in reports if not r.ok]
    changed = [r for r in reports if r.status == "succeeded"]
    summary = {
        "hosts": len(names),
        "failed": len(bad),
        "changed": len(changed),
        "bytes_sent": sum(r.bytes_sent for r in reports),
    }
    details: dict[str, Any] = {
        "artifact_key": key if location else None,
        "artifact_location": location,
        "manifest_digest": spec.manifest.with_shared(spec.shared_paths).digest(),
        "artifact_base": base.key if base is not None and location else None,
        "failed_hosts": [r.host for r in bad],
    }
    if not changed and not bad:
        finish_release_run(  # nothing happened: nobody is told
            engine,
            release_row,
            ReleaseStatus.cancelled,
            summary={**summary, "result": "no change"},
            details=details,
        )
        logger.info("no change: every host already runs this content")
        outcome = "no change"
    else:
        text = f"{len(changed)} of {len(names)} host(s) now run {release_id}"
        if bad:
            text += f"; {len(bad)} failed ({limit} tolerated)"
        finish_release_run(
            engine,
            release_row,
            ReleaseStatus.succeeded,
            summary={**summary, "result": "deployed"},
            details=details,
            announce=Announcement(
                app,
                env,
                "succeeded",
                ref,
                actor,
                _outcome_text(text, [(r.host, r.step, r.message) for r in bad]),
            ),
        )
        outcome = "deployed"
        if bad:
            logger.error(
                "%s",
                HostsFailed(
                    f"{len(bad)} host(s) failed ({limit} tolerated); the others run {release_id}",
                    [(r.host, r.step, r.message) for r in bad],
                ),
            )
    try:
        publishing.join(60)
    except Exception as e:  # the release stands without its table
        logger.warning("could not publish the per-host table artifact: %s", e)
    return {
        "release": release_row,
        "release_id": release_id,
        "commit": sha,
        "result": outcome,
        "hosts": {r.host: r.status for r in reports},
        "failed": [r.host for r in bad],
        "bytes_sent": {r.host: r.bytes_sent for r in reports},
    }


def _outcome_text(headline: str, failed: list[tuple[str, str, str]]) -> str:
    """A notification's details: ``headline`` and one line per failed host (at most 10)."""
    lines = [inline(headline)]
    lines += [
        f"- {inline(h)} [{inline(step)}]: {inline(msg)[:200]}" for h, step, msg in failed[:10]
    ]
    if len(failed) > 10:
        lines.append(f"- … and {len(failed) - 10} more")
    return "\n".join(lines)


def _roll_back_switched(
    target: Target, spec: ReleaseSpec, reports: list[HostReport], release_row: int
) -> list[HostReport]:
    """Switch every host that switched to the new release back to its previous one."""
    logger = get_run_logger()
    engine = ledger_engine()
    host_map = dict(target.hosts)
    switched = {r.host: r for r in reports if r.switched and r.status == "succeeded"}
    if not switched:
        return reports

    def back(h: str) -> str:
        r = switched[h]
        root = spec.root_for(h)
        return switch_back_host(
            h,
            host_map[h],
            root,
            r.previous,
            list(spec.hooks.post_switch),
            spec.env_for(h, root, r.previous),
        )

    result = fan_out("switch back", back, list(switched), target.env.max_parallel)
    out: list[HostReport] = []
    rows: list[HostOutcome] = []
    by_host = {o.host: o for o in result.outcomes}
    for r in reports:
        outcome = by_host.get(r.host)
        if outcome is None:
            out.append(r)
            continue
        if outcome.ok:
            note = f"rolled back to {r.previous or 'no release'}"
            new = HostReport(
                r.host,
                "rolled_back",
                "rollback",
                note,
                r.previous,
                False,
                r.bytes_sent,
                r.files_sent,
                r.duration_s,
            )
            status = HostStatus.rolled_back
        else:
            note = f"automatic rollback failed: {outcome.message}"
            new = HostReport(r.host, "failed", "rollback", note, r.previous, True, r.bytes_sent)
            status = HostStatus.failed
        logger.warning("%s: %s", r.host, note)
        rows.append(
            HostOutcome(
                r.host,
                status,
                step="rollback",
                message=note,
                bytes_sent=r.bytes_sent,
                duration_s=r.duration_s,
            )
        )
        out.append(new)
    record_host_outcomes(engine, release_row, rows)
    return out


def _publish(target: Target, ref: str, reports: list[HostReport], skipped: list[str]) -> None:
    publish_host_table(
        artifact_key("git-deploy", target.app_name, target.env_name),
        f"git deploy of {inline(target.app_name)}/{inline(target.env_name)} to {inline(ref)}",
        reports,
        skipped,
    )
