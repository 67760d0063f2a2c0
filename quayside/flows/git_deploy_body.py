"""What :func:`quayside.flows.git_deploy.git_deploy` does, step by step: resolve the ref,
build the payload, plan per host, then the shared release lifecycle (approve, lock, apply in
batches, restore past the threshold, finish) with git's own work - keeping the payload in the
artifact store and the hosts' facts for the next deploy."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture

from quayside.artifacts.delta import StoredPayload, recall, remember
from quayside.auth.policy import effective_policy
from quayside.commands.release import parse_facts
from quayside.deploy import expected_facts
from quayside.deploy.errors import HostsFailed
from quayside.deploy.host_plan import prepare_plans
from quayside.deploy.policy import failure_limit
from quayside.deploy.release_spec import ReleaseSpec
from quayside.deploy.scripts import host_deploy_root
from quayside.deploy.summary import approval_markdown
from quayside.errors import QuaysideError
from quayside.fanout import batch_size
from quayside.inventory.resolve import Target
from quayside.ledger.models import Release, ReleaseKind
from quayside.ledger.release_queries import current_release
from quayside.ledger.sole_copies import SOLE_COPY_REASON, sole_copies
from quayside.manifest import Manifest, human_bytes
from quayside.markdown_text import code, code_block, inline
from quayside.release.host_outcomes import failed_rows, host_outcomes
from quayside.release.host_report import HostReport
from quayside.release_id import new_release_id
from quayside.scratch import BackgroundRemoval
from quayside.scratch_owner import owner_path
from quayside.settings import Settings
from quayside.source.mirror import GitMirror
from quayside.tasks.fanout import fan_out
from quayside.tasks.host_serving import all_serve, serving_markdown, serving_releases
from quayside.tasks.host_tasks import deploy_to_host, switch_back_host
from quayside.tasks.ledger import ledger_engine
from quayside.tasks.params import opaque
from quayside.tasks.payload_build import build_payload, remembered_manifest, return_build_dir
from quayside.tasks.payload_keeping import (
    build_dir,
    host_facts_path,
    inline_max,
    payload_index,
    store_location,
    stream_dir_of,
    usable_delta_base,
)
from quayside.tasks.payload_store import store_payload
from quayside.tasks.release_apply import Applied
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.release_progress import Progress
from quayside.tasks.release_report import artifact_key, reports_of
from quayside.tasks.release_resolve import resolve_release
from quayside.tasks.source import resolve_ref


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
    """The body of :func:`quayside.flows.git_deploy.git_deploy` (its docstring says what it
    does and returns), run in a thread by :func:`quayside.tasks.sync_body.run_sync_body`."""
    resolved = resolve_release({"app": app, "env": env, "hosts": hosts}, requested_by)
    settings, requested_by, target = resolved.settings, resolved.requested_by, resolved.must_target
    names = target.host_names
    size = batch_size(batch if batch is not None else target.env.batch, len(names))
    limit = failure_limit(target.env.failure_threshold, len(names))
    for name in names:
        host_deploy_root(target.deploy_root, name)  # refuse a bad root before anything runs

    source = resolve_ref(settings.mirrors_dir, target.app.repo, ref, app)
    sha = source.commit_sha
    release_id = new_release_id(sha)
    if dry_run:
        return _dry_run(target, source.mirror, ref, sha, release_id, settings)

    key = f"{app}/{env}/{release_id}"
    request = ReleaseRequest(
        app,
        env,
        ReleaseKind.deploy,
        version=ref,
        requested_by=requested_by,
        fields={"ref": ref, "commit_sha": sha, "artifact_location": store_location(key)},
        details={"release_id": release_id, "artifact_key": key},
        lock_wait_s=lock_wait_s,
    )
    with ReleaseLifecycle(request, target) as life:
        # plan before the gate: where an approver would be asked, read what each host serves -
        # all of them this commit (and not already asked, before a suspension): no change,
        # nobody asked; else the approver sees per host what changes. An app with build commands is
        # planned by content after its build (the same commit may build other files), so it
        # always goes on to the gate.
        serving: dict[str, str | None] | None = None
        if _gated(target, approval):
            # read on a resume too: the description shown again must be the one approved
            # (its hash binds the approval), unless the hosts changed meanwhile
            serving = serving_releases(target)
            resumed = life.waiting_release() is not None
            if not resumed and all_serve(serving, sha) and not target.app.build:
                return _unchanged(life, serving, sha, limit)
        life.approve(
            lambda: _approval_summary(source.mirror, target, ref, sha, requested_by, serving),
            asked=approval,
        )
        # resumed after a suspension: keep the release directory the row was recorded with
        release_id = life.recorded_details().get("release_id") or release_id
        key = f"{app}/{env}/{release_id}"
        life.lock()
        build = build_dir(settings, app, env, release_id, locked=True)
        # the mirror's tree goes back to it; anything else is deleted by an rm process that
        # may outlive the run (measured: deleting it while the run wrote its last ledger rows
        # slowed those writes); the owner file last
        scratch = BackgroundRemoval()
        life.callback(
            return_build_dir, source.mirror, build, scratch, stream_dir_of(build), owner_path(build)
        )
        # what the hosts probably run (read before the build replaces it): a host holding
        # exactly this manifest need not send it back with its facts
        remembered = None if target.app.build else remembered_manifest(source.mirror)
        known = remembered.manifest if remembered is not None else None
        life.step = "build"
        manifest = build_payload(
            source.mirror, app, target.app, env, release_id, sha, ref, build, opaque(remembered)
        )
        life.step = None
        life.start(manifest_digest=manifest.with_shared(tuple(target.app.shared_paths)).digest())
        life.show_hosts(
            artifact_key("git-deploy", app, env),
            f"git deploy of {inline(app)}/{inline(env)} to {inline(ref)}",
        )
        expected = expected_facts.load(host_facts_path(settings, app, env))
        # read under the lock: no other release of app/env changes what is stored meanwhile
        protected = sole_copies(life.engine, app, env)
        spec = _spec(target, ref, sha, release_id, build, manifest, known, expected, protected)
        base = usable_delta_base(manifest, recall(payload_index(settings, app, env), known))
        title = f"{inline(app)}/{inline(env)} to {inline(ref)}"
        progress_key = artifact_key("git-deploy-progress", app, env)
        with Progress(len(names), progress_key, title) as bar:
            # closed last: the final progress update goes out while the ledger is written
            return _deploy(life, spec, key, size, limit, base, settings, bar)


def _deploy(
    life: ReleaseLifecycle,
    spec: ReleaseSpec,
    key: str,
    size: int,
    limit: int,
    base: StoredPayload | None,
    settings: Settings,
    progress: Progress,
) -> dict[str, Any]:
    logger = get_run_logger()
    target = life.target
    assert target is not None
    app, env = target.app_name, target.env_name
    names = target.host_names
    host_map = dict(target.hosts)
    logger.info(
        "release %s (%s): %d host(s) in batches of %d, %d failure(s) tolerated",
        spec.release_id,
        human_bytes(spec.manifest.total_bytes),
        len(names),
        size,
        limit,
    )
    # a delta (a few changed files) is stored alongside the hosts; a whole payload after
    # them, as packing it competes with the host sessions for the CPU and must never delay
    # a switch (the ledger work below overlaps it)
    stored: PrefectFuture[tuple[str, StoredPayload]] | None = None
    if base is not None:
        stored = store_payload.submit(key, spec.payload_dir, opaque(spec.manifest), opaque(base))
    prepare_plans(spec, names)  # once per distinct facts, before the host tasks compete
    applied = life.apply(
        names,
        lambda h: deploy_to_host(h, host_map[h], spec, progress=progress),
        action="deploy",
        batch_size=size,
        failure_limit=limit,
    )
    sole_kept = kept_sole_copies(applied.reports, spec.protected)
    if sole_kept:
        logger.info(
            "not pruned: %s - %s",
            ", ".join(f"{rid} (on {', '.join(hosts)})" for rid, hosts in sole_kept.items()),
            SOLE_COPY_REASON,
        )
    facts_path = host_facts_path(settings, app, env)
    if applied.stopped:
        # switching back comes first: nothing on the failure path waits for the store
        life.restore(applied, lambda r: _switch_back(target, spec, r))
        expected_facts.save(facts_path, spec.expected_facts, {}, forget=names)
        row = life.record()

        def nothing_kept(session: Any) -> None:  # the column said where it would be kept
            session.get(Release, row).artifact_location = None

        raise life.fail_threshold(applied, details={"artifact_location": None}, also=nothing_kept)

    if stored is None:
        stored = store_payload.submit(key, spec.payload_dir, opaque(spec.manifest), None)
    expected_facts.save(
        facts_path,
        spec.expected_facts,
        {r.host: r.facts_after for r in applied.reports if r.ok and r.facts_after is not None},
        forget=[r.host for r in applied.bad],
    )
    store_error: str | None = None
    try:
        location, kept = stored.result()
        remember(payload_index(settings, app, env), kept)
    except Exception as e:  # the deploy stands; a restore after pruning will not be possible
        location, store_error = None, (str(e) or type(e).__name__).splitlines()[0]
        logger.warning(
            "not restorable: the payload could not be kept in the artifact store (%s); once "
            "its release directories are pruned from the hosts, this release cannot be rolled "
            "back to",
            store_error,
        )
    # the table artifact goes out while the ledger is written (finish_applied)
    return _finish(life, spec, key, base, location, applied, limit, store_error, sole_kept)


def _finish(
    life: ReleaseLifecycle,
    spec: ReleaseSpec,
    key: str,
    base: StoredPayload | None,
    location: str | None,
    applied: Applied,
    limit: int,
    store_error: str | None = None,
    kept: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Finish a release that was not stopped (the lifecycle's outcome mapping: succeeded,
    failed when every host failed, or "no change" - cancelled, nobody told - when every host
    already had this content). A payload the artifact store could not
    keep (``store_error``) makes the release not restorable: its ``artifact_location`` is
    cleared, and ``details.restorable`` and ``summary.warnings`` say so. ``kept`` (release id
    -> hosts) names the directories the prune left because they are the only copy of their
    release (``summary.kept``)."""
    reports, bad, changed = applied.reports, applied.bad, applied.changed
    total = len(reports) + len(applied.skipped)
    summary: dict[str, Any] = {"bytes_sent": sum(r.bytes_sent for r in reports)}
    if kept:
        summary["kept"] = {"releases": kept, "why": SOLE_COPY_REASON}
    details: dict[str, Any] = {
        "artifact_key": key if location else None,
        "artifact_location": location,
        "manifest_digest": spec.manifest.with_shared(spec.shared_paths).digest(),
        "artifact_base": base.key if base is not None and location else None,
        "restorable": location is not None,
    }
    also = None
    if store_error is not None:
        summary["warnings"] = [f"not restorable: the artifact store failed ({store_error[:200]})"]
        details["store_error"] = store_error[:500]
        row = life.record()

        def also(session: Any) -> None:  # the column said where the payload would be
            session.get(Release, row).artifact_location = None

    outcome = life.finish_applied(
        applied,
        f"{len(changed)} of {total} host(s) now run {spec.release_id}",
        limit=limit,
        summary={**summary, "result": "deployed"},
        details=details,
        also=also,
    )
    if outcome == "failed":
        raise HostsFailed(
            f"every host failed ({limit} tolerated); none runs {spec.release_id}",
            failed_rows(reports),
        )
    if bad:
        get_run_logger().error(
            "%s",
            HostsFailed(
                f"{len(bad)} host(s) failed ({limit} tolerated); the others run {spec.release_id}",
                failed_rows(reports),
            ),
        )
    return {
        "release": life.row,
        "release_id": spec.release_id,
        "commit": spec.commit_sha,
        "result": "deployed" if outcome == "succeeded" else outcome,
        "hosts": {r.host: r.status for r in reports},
        "failed": [r.host for r in bad],
        "bytes_sent": {r.host: r.bytes_sent for r in reports},
    }


def kept_sole_copies(
    reports: Sequence[HostReport], protected: Collection[str]
) -> dict[str, list[str]]:
    """Release id -> the hosts that still have its directory after their prune, for the
    ``protected`` ids (the only copy of their release), from the facts each host printed
    after its switch."""
    kept: dict[str, list[str]] = {}
    if not protected:
        return kept
    for report in reports:
        if report.facts_after is None:
            continue
        for rid in parse_facts(report.facts_after).releases:
            if rid in protected:
                kept.setdefault(rid, []).append(report.host)
    return dict(sorted(kept.items()))


def _switch_back(target: Target, spec: ReleaseSpec, report: HostReport) -> str:
    """Switch one host that switched to the new release back to its previous one."""
    root = spec.root_for(report.host)
    return switch_back_host(
        report.host,
        dict(target.hosts)[report.host],
        root,
        report.previous,
        list(spec.hooks.post_switch),
        spec.env_for(report.host, root, report.previous),
    )


def _gated(target: Target, asked: bool) -> bool:
    """True where the environment's policy (or the caller) asks for an approval."""
    return effective_policy(target.env.approval, asked=asked) is not None


def _unchanged(
    life: ReleaseLifecycle, serving: dict[str, str | None], sha: str, limit: int
) -> dict[str, Any]:
    """Finish a deploy whose every host already serves its commit (read before the gate):
    ``no change``, under the lock like every release, with nothing sent and nobody asked."""
    target = life.target
    assert target is not None
    life.lock()
    # read again under the lock: another release may have switched a host since
    if not all_serve(serving_releases(target), sha):
        raise QuaysideError(
            "the hosts changed while this deploy was planned (another release switched "
            "them): nothing was done",
            hint="deploy again: it will plan against what the hosts serve now",
        )
    life.start()
    life.show_hosts(
        artifact_key("git-deploy", target.app_name, target.env_name),
        f"git deploy of {inline(target.app_name)}/{inline(target.env_name)} "
        f"to {inline(life.request.label)}",
    )
    reports = [
        HostReport(host, "no_change", "plan", f"already serves {rid}")
        for host, rid in serving.items()
    ]
    life.record_hosts(host_outcomes(reports))
    life.finish_applied(Applied(reports, [], 0, limit, False), "no change")
    return {
        "release": life.row,
        "release_id": next(iter(serving.values()), None),
        "commit": sha,
        "result": "no change",
        "hosts": {r.host: r.status for r in reports},
        "failed": [],
        "bytes_sent": {r.host: 0 for r in reports},
    }


def _approval_summary(
    mirror: GitMirror,
    target: Target,
    version: str,
    sha: str,
    requested_by: str,
    serving: dict[str, str | None] | None = None,
) -> str:
    current = current_release(
        ledger_engine(),
        target.app_name,
        target.env_name,
        kinds=(ReleaseKind.deploy, ReleaseKind.rollback),
    )
    old = current.commit_sha if current is not None else None
    try:
        commits = mirror.log(old, sha)
        changed = mirror.changed_files(old, sha)
    except QuaysideError:  # the old commit is not in this repository (any more)
        commits, changed, old = mirror.log(None, sha, limit=5), [], None
    plan = approval_markdown(
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
    return plan if serving is None else f"{plan}\n\n{serving_markdown(serving, sha)}"


def _spec(
    target: Target,
    ref: str,
    sha: str,
    release_id: str,
    payload: Path,
    manifest: Any,
    known: Manifest | None = None,
    expected: dict[str, str] | None = None,
    protected: frozenset[str] = frozenset(),
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
        shared_paths=shared,
        keep_releases=target.app.keep_releases,
        protected=protected,
        hooks=target.app.hooks,
        health=target.app.health_check,
        variables=dict(target.env.variables),
        inline_max_bytes=inline_max(),
        known_manifest=known.with_shared(shared) if known is not None else None,
        expected_facts=expected or {},
        scratch_dir=stream_dir_of(payload),
    )


def _dry_run(
    target: Target, mirror: GitMirror, ref: str, sha: str, release_id: str, settings: Settings
) -> dict[str, Any]:
    """Build and plan every host; report what would change. Nothing on the hosts changes, no
    lock is taken, nothing is written to the ledger."""
    logger = get_run_logger()
    build = build_dir(settings, target.app_name, target.env_name, release_id, locked=False)
    try:
        manifest = build_payload(
            mirror, target.app_name, target.app, target.env_name, release_id, sha, ref, build
        )
        protected = sole_copies(ledger_engine(), target.app_name, target.env_name)
        spec = _spec(target, ref, sha, release_id, build, manifest, protected=protected)
        result = fan_out(
            "plan",
            lambda h: deploy_to_host(h, dict(target.hosts)[h], spec, dry_run=True),
            target.host_names,
            target.env.max_parallel,
        )
    finally:
        return_build_dir(
            mirror, build, BackgroundRemoval(), stream_dir_of(build), owner_path(build)
        )
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
