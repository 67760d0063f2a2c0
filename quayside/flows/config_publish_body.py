"""What :func:`quayside.flows.config_publish.config_publish` does, step by step: resolve and
render the versions, read every host and plan (diff per host and file, secrets masked), then
the shared release lifecycle (approve with the diff, lock, apply in batches with the failure
threshold, restore past it, finish) - once, or for a canary publish twice: the canary hosts,
then (after an approval gate or a set delay) the rest. Content that changed while the gate
waited is never published on the old approval: the run plans again and the gate asks again."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from quayside.auth.approvals import DEFAULT_GATE
from quayside.config import items
from quayside.config.address import EnvAddress
from quayside.config.backend import open_reader, open_store
from quayside.config.host_publish import HostJob
from quayside.config.publish_editors import editors_of
from quayside.config.publish_files import choose_items, rendered_files, secret_masker
from quayside.config.publish_plan import (
    HostPlan,
    PublishFile,
    check_records,
    content_digest,
    plan_host,
    plan_markdown,
)
from quayside.config.publish_variables import check_variable_versions
from quayside.config.secret_box import SecretBox
from quayside.config.store import ConfigStore
from quayside.deploy.errors import HostsFailed
from quayside.deploy.policy import failure_limit
from quayside.errors import InputError, NotFoundError, QuaysideError
from quayside.fanout import batch_size
from quayside.inventory.config_services import ConfigService
from quayside.inventory.resolve import Target
from quayside.ledger.models import HostStatus, Release, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import releases_of_run
from quayside.ledger.releases import HostOutcome
from quayside.markdown_text import inline
from quayside.release.host_outcomes import failed_rows, outcome_text
from quayside.tasks.config_publish import publish_on_host, read_hosts, restore_on_host
from quayside.tasks.ledger import current_flow_run_id, ledger_engine
from quayside.tasks.release_apply import Applied
from quayside.tasks.release_finish import finish_quietly
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.release_report import artifact_key, publish_host_table
from quayside.tasks.release_resolve import resolve_release

REST_GATE = "rest"
#: plans (each shown at the gate) before a publish whose content keeps changing gives up
MAX_PLANS = 5
"""The approval gate before the rest of a canary publish (the canary's is the run's first)."""


class ContentChanged(QuaysideError):
    """The content to publish changed while the gate waited: the approval showed other
    content. The run plans again from the top (as a resumed run does), and the gate voids
    the old request (its plan changed) and asks again."""


@dataclass
class Publish:
    """One publish run's resolved input: what to release where."""

    target: Target
    service_name: str
    service: ConfigService
    store: ConfigStore
    files: list[PublishFile]
    digest: str
    requested_by: str
    lock_wait_s: float
    rollback_of: int | None
    version_id: str
    batch: int | str | None = None
    editors: dict[str, str] = field(default_factory=dict)
    """Who edited the versions since their published ones, user -> what (kept in the
    release's details: after the canary moved the published marker, the rest's gate still
    excludes them)."""
    digest_now: Callable[[], str] | None = field(default=None, repr=False)
    """The content digest as the store renders it now (after a wait at the gate)."""

    @property
    def label(self) -> str:
        parts = " ".join(f"{f.filename}@v{f.version}" for f in self.files)
        return f"{self.service_name}: {parts}"[:200]

    def details(self, phase: str, hosts: Sequence[str]) -> dict[str, Any]:
        return {
            "service": self.service_name,
            "files": {
                f.filename: {
                    "version": f.version,
                    "content_hash": f.content_hash,
                    "variables": f.variables,  # what its rendering read: a rollback's
                }
                for f in self.files
            },
            "content_digest": self.digest,
            "phase": phase,
            "hosts": list(hosts),
            "version_dir": self.version_id,
            "editors": self.editors,
        }


def publish_config(
    *,
    project: str,
    env: str,
    service: str,
    files: list[str] | None,
    versions: dict[str, int] | None,
    hosts: list[str] | None,
    canary: int | list[str] | None,
    canary_wait_s: float | None,
    batch: int | str | None,
    dry_run: bool,
    requested_by: str,
    approval: bool,
    lock_wait_s: float,
    rollback_of: int | None,
    variable_versions: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The body of :func:`quayside.flows.config_publish.config_publish` (its docstring says
    what it does and returns), run in a thread by :func:`quayside.tasks.sync_body.run_sync_body`.

    Raises:
        ContentChanged: the content changed while the gate waited, :data:`MAX_PLANS` times.
    """
    for attempt in range(1, MAX_PLANS + 1):
        try:
            return _publish_once(
                project=project, env=env, service=service, files=files, versions=versions,
                hosts=hosts, canary=canary, canary_wait_s=canary_wait_s, batch=batch,
                dry_run=dry_run, requested_by=requested_by, approval=approval,
                lock_wait_s=lock_wait_s, rollback_of=rollback_of,
                variable_versions=variable_versions,
            )  # fmt: skip
        except ContentChanged as e:
            if attempt == MAX_PLANS:
                raise ContentChanged(
                    f"{e} - {MAX_PLANS} times in a row; publish again once the edits settle"
                ) from None
            get_run_logger().warning("%s; planning again", e)
    raise AssertionError("unreachable")  # the loop returns or raises


def _publish_once(
    *,
    project: str,
    env: str,
    service: str,
    files: list[str] | None,
    versions: dict[str, int] | None,
    hosts: list[str] | None,
    canary: int | list[str] | None,
    canary_wait_s: float | None,
    batch: int | str | None,
    dry_run: bool,
    requested_by: str,
    approval: bool,
    lock_wait_s: float,
    rollback_of: int | None,
    variable_versions: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One pass of :func:`publish_config`: resolve, render, plan, publish.

    Raises:
        ContentChanged: the content changed while the gate waited (plan again).
    """
    resolved = resolve_release({"app": project, "env": env, "hosts": hosts}, requested_by)
    settings, requested_by, target = resolved.settings, resolved.requested_by, resolved.must_target
    svc = target.env.config.get(service)
    if svc is None:
        raise NotFoundError(
            f"{project}/{env} publishes no config service '{service}'",
            hint=f"add apps.{project}.environments.{env}.config.{service} to quayside.yaml "
            f"(services here: {', '.join(sorted(target.env.config)) or 'none'})",
        )
    store = open_store(ledger_engine())
    reader = open_reader()
    box = SecretBox.from_home(settings.home)
    chosen = choose_items(store, project, env, service, files, versions)
    pinned = check_variable_versions(store, EnvAddress(project, env), variable_versions)
    rendered, seen = rendered_files(store, chosen, box, reader, pinned)
    redact = secret_masker(store, box, EnvAddress(project, env), reader)
    try:
        check_records(svc, rendered)
    except InputError as e:  # it quotes the rendered line: a secret may be on it
        raise InputError(redact(e.message), hint=e.hint) from None
    digest = content_digest(rendered, seen)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")

    def digest_now() -> str:
        now, used = rendered_files(
            store, choose_items(store, project, env, service, files, versions), box, reader,
            pinned,
        )  # fmt: skip
        return content_digest(now, used)

    pub = Publish(
        target, service, svc, store, rendered, digest, requested_by, lock_wait_s, rollback_of,
        f"{stamp}-{digest[:10]}", batch, editors_of(store, rendered), digest_now,
    )  # fmt: skip
    canary_hosts = _canary_hosts(target, canary)
    canary_row = _canary_done(pub) if canary_hosts else None
    if canary_row is not None:  # resumed after the canary moved the published marker
        pub.editors = dict((canary_row.details or {}).get("editors") or {})
    plans = _plan(pub, target.host_names, redact)
    markdown = plan_markdown(
        project=project, env=env, service=service, files=rendered, digest=digest,
        plans=list(plans.values()), requested_by=requested_by,
    )  # fmt: skip
    create_markdown_artifact(
        markdown=markdown,
        key=artifact_key("config-publish-plan", project, env, service),
        description=f"config publish plan of {inline(project)}/{inline(env)} {inline(service)}",
    )
    changing = [h for h, p in plans.items() if not p.no_change]
    base = {"digest": digest, "files": {f.filename: f.version for f in rendered}}
    if dry_run:
        shown = {h: "no change" if p.no_change else p.diff for h, p in plans.items()}
        return {**base, "release": None, "result": "planned", "hosts": shown}
    if not changing:
        _mark_published(pub)
        get_run_logger().info("no change: every host already has these files")
        return {**base, "release": None, "result": "no change",
                "hosts": {h: "no_change" for h in plans}}  # fmt: skip
    if not canary_hosts:
        return {**base, **_phase(pub, plans, redact, "all", markdown, approval)}
    out: dict[str, Any] = {**base, "canary": canary_hosts}
    if canary_row is None:
        canary_plans = {h: plans[h] for h in canary_hosts}
        out["canary_release"] = _phase(pub, canary_plans, redact, "canary", markdown, approval)
        if canary_wait_s is not None:
            get_run_logger().info("canary done; waiting %.0fs before the rest", canary_wait_s)
            time.sleep(canary_wait_s)
    rest = {h: p for h, p in plans.items() if h not in canary_hosts}
    if not rest:
        return {**out, **out.get("canary_release", {})}
    rest_markdown = plan_markdown(
        project=project, env=env, service=service, files=rendered, digest=digest,
        plans=list(rest.values()), requested_by=requested_by,
        title=f"Config publish after the canary ({', '.join(canary_hosts)})",
    )  # fmt: skip
    asked = canary_wait_s is None or approval
    return {**out, **_phase(pub, rest, redact, "rest", rest_markdown, asked)}


def _canary_hosts(target: Target, canary: int | list[str] | None) -> list[str]:
    names = target.host_names
    if canary is None or canary == 0 or canary == []:
        return []
    if isinstance(canary, int):
        if canary < 0 or canary >= len(names):
            raise InputError(
                f"canary: {canary} host(s) of {len(names)}; give fewer than all the hosts"
            )
        return names[:canary]
    unknown = [h for h in canary if h not in names]
    if unknown:
        raise InputError(
            f"canary: {', '.join(unknown)} not among the hosts of {target.app_name}/"
            f"{target.env_name} ({', '.join(names)})"
        )
    return [h for h in names if h in canary]


def _canary_done(pub: Publish) -> Release | None:
    """The canary release this flow run already published, if any (Prefect runs a resumed
    run again from the top: the canary is not published twice)."""
    run_id = current_flow_run_id()
    if run_id is None:
        return None
    for r in releases_of_run(ledger_engine(), run_id):
        if (
            (r.details or {}).get("phase") == "canary"
            and (r.details or {}).get("content_digest") == pub.digest
            and r.status is ReleaseStatus.succeeded
        ):
            return r
    return None


def _plan(pub: Publish, names: Sequence[str], redact: Any) -> dict[str, HostPlan]:
    """Read every host and compare (a host that cannot be read stops the run here)."""
    host_map = dict(pub.target.hosts)
    result = read_hosts(
        {h: host_map[h] for h in names},
        pub.service,
        [f.filename for f in pub.files],
        pub.target.env.max_parallel,
    )
    if not result.ok:
        rows = [(o.host, "read", o.message) for o in result.failed]
        raise HostsFailed(
            f"could not read the live config files of {len(rows)} host(s); nothing was changed",
            rows,
        )
    plans = {}
    for o in result.outcomes:
        assert o.value is not None
        plans[o.host] = plan_host(pub.service, o.value, pub.files, redact)
    return plans


def _jobs(pub: Publish, plans: dict[str, HostPlan], redact: Any) -> dict[str, HostJob]:
    host_map = dict(pub.target.hosts)
    return {
        h: HostJob(h, host_map[h].address, pub.service, p, pub.files, pub.version_id, redact)
        for h, p in plans.items()
    }


def _phase(
    pub: Publish,
    plans: dict[str, HostPlan],
    redact: Any,
    phase: str,
    markdown: str,
    asked: bool,
) -> dict[str, Any]:
    """One lifecycle over ``plans``' hosts: approve, lock, re-check the plan, apply, finish."""
    target = pub.target
    names = list(plans)
    size = batch_size(pub.batch if pub.batch is not None else target.env.batch, len(names))
    limit = 0 if phase == "canary" else failure_limit(target.env.failure_threshold, len(names))
    request = ReleaseRequest(
        target.app_name,
        target.env_name,
        ReleaseKind.config,
        version=pub.label,
        requested_by=pub.requested_by,
        shown=pub.label if phase != "rest" else f"{pub.label} (after the canary)",
        fields={"rollback_of_id": pub.rollback_of} if pub.rollback_of else {},
        details=pub.details(phase, names),
        lock_wait_s=pub.lock_wait_s,
    )
    host_map = dict(target.hosts)
    with ReleaseLifecycle(request, target) as life:
        # the rest's gate is a gate of its own: answering one never answers the other
        gate = REST_GATE if phase == "rest" else DEFAULT_GATE
        approver = life.approve(markdown, asked=asked, editors=pub.editors, gate=gate)
        if approver is not None and phase != "rest":  # the rest publishes what the canary did
            _still_approved_content(life, pub)
        life.lock()
        life.step = "plan"
        now = _plan(pub, names, redact)  # under the lock: what was approved is still true
        moved = [
            h for h in names if (now[h].changed, now[h].diff) != (plans[h].changed, plans[h].diff)
        ]
        if moved:
            raise QuaysideError(
                f"the live files of {', '.join(moved)} changed since the plan was shown; "
                "nothing was published",
                hint="start the publish again to see the new plan",
            )
        life.step = None
        life.start()
        jobs = _jobs(pub, now, redact)
        changing = [h for h in names if not now[h].no_change]
        same = [h for h in names if now[h].no_change]
        life.record_hosts([HostOutcome(h, HostStatus.succeeded, step="no change") for h in same])
        applied = life.apply(
            changing,
            lambda h: publish_on_host(h, host_map[h], jobs[h]),
            action=f"publish {phase}" if phase != "all" else "publish",
            batch_size=size,
            failure_limit=limit,
        )
        if applied.stopped:
            life.restore(
                applied,
                lambda r: restore_on_host(r.host, host_map[r.host], jobs[r.host], r.previous),
                action="restore",
            )
            _table(pub, phase, applied)
            raise life.fail_threshold(applied, details={"failed_phase": phase})
        _table(pub, phase, applied)
        return _finish(life, pub, phase, applied, same, limit)


def _still_approved_content(life: ReleaseLifecycle, pub: Publish) -> None:
    """After a wait at the gate (in the run's process: a resumed run renders again from the
    top anyway), check the store still renders the content the approval showed.

    Raises:
        ContentChanged: it does not; this run's release ends cancelled (nothing published).
    """
    if pub.digest_now is None or pub.digest_now() == pub.digest:
        return
    why = "the content to publish changed while waiting for approval (a file or variable)"
    finish_quietly(life.engine, life.row, ReleaseStatus.cancelled, why)
    life.finished = True
    raise ContentChanged(why)


def _finish(
    life: ReleaseLifecycle,
    pub: Publish,
    phase: str,
    applied: Applied,
    same: list[str],
    limit: int,
) -> dict[str, Any]:
    reports, bad = applied.reports, applied.bad
    total = len(reports) + len(applied.skipped) + len(same)
    text = f"{len(applied.changed)} of {total} host(s) now serve {pub.label}"
    if same:
        text += f" ({len(same)} had it already)"
    if bad:
        text += f"; {len(bad)} failed ({limit} tolerated), restored"
    published = not bad and phase in ("all", "canary")
    # every host it worked on failed (within the tolerance) and was restored: nothing of it
    # serves anywhere, so the release failed, as a git deploy's does
    none_serve = bool(bad) and len(bad) == len(reports)
    life.finish(
        ReleaseStatus.failed if none_serve else ReleaseStatus.succeeded,
        event="failed" if none_serve else "succeeded",
        text=outcome_text(text, failed_rows(reports)),
        summary={
            "hosts": total,
            "changed": len(applied.changed),
            "failed": len(bad),
            "result": "restored" if none_serve else "published",
            "phase": phase,
            "marker_moved": published,
        },  # fmt: skip
        details={"failed_hosts": [r.host for r in bad]},
    )
    if published:
        _mark_published(pub)
    if none_serve:
        raise HostsFailed(
            f"every host that needed the files failed and was restored ({len(bad)} of "
            f"{len(reports)}): nothing was published",
            failed_rows(reports),
        )
    if bad:
        get_run_logger().error(
            "%s",
            HostsFailed(
                f"{len(bad)} host(s) failed and were restored ({limit} tolerated); the "
                "published marker did not move",
                failed_rows(reports),
            ),
        )
    return {
        "release": life.row,
        "result": "published",
        "phase": phase,
        "hosts": {**{h: "no_change" for h in same}, **{r.host: r.status for r in reports}},
        "failed": [r.host for r in bad],
        "marker_moved": published,
    }


def _mark_published(pub: Publish) -> None:
    """Move each item's published marker (only after every targeted host has the files),
    with the variable versions its rendering used: a changed variable moves it too."""
    run_id = current_flow_run_id()
    actor = f"flow-run:{run_id}" if run_id else pub.requested_by
    for f in pub.files:
        marker = pub.store.published_marker(f.address)
        if marker is None or (marker.version, marker.variables) != (f.version, f.variables):
            items.mark_published(
                pub.store, f.address, f.version, actor=actor, variables=f.variables
            )


def _table(pub: Publish, phase: str, applied: Applied) -> None:
    t = pub.target
    try:
        publish_host_table(
            artifact_key("config-publish", t.app_name, t.env_name, pub.service_name, phase),
            f"config publish ({phase}) of {inline(t.app_name)}/{inline(t.env_name)} "
            f"{inline(pub.label)}",
            applied.reports,
            applied.skipped,
        )
    except Exception as e:  # the release stands without its table
        get_run_logger().warning("could not publish the per-host table: %s", e)
