"""What :func:`quayside.flows.image_release.image_release` does, step by step: resolve the
image (version and digest, the build's artifact checksum) and render the environment's config,
read what every Docker host serves and plan, then the shared release lifecycle (approve,
lock, apply in batches with the failure threshold, restore past it, finish), and last remove
the old containers and prune images no kept release references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger

from quayside.config.backend import open_reader, open_store
from quayside.config.secret_box import SecretBox
from quayside.deploy.errors import HostsFailed
from quayside.deploy.policy import failure_limit
from quayside.errors import InputError
from quayside.executors.base import Executor
from quayside.executors.factory import executor_for
from quayside.fanout import batch_size, run_on_hosts
from quayside.images import containers_docker as engine
from quayside.images.image_release_config import ReleaseConfig, render_release_config
from quayside.images.image_release_host import (
    ImageJob,
    Switched,
    finish_on_host,
    read_state,
    release_on_host,
    restore_on_host,
)
from quayside.images.image_release_target import ImageChoice, protected_digests, resolve_image
from quayside.inventory.image_models import ImageRun
from quayside.inventory.resolve import Target
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.markdown_text import code, inline
from quayside.release.covering_approval import CoveringApproval
from quayside.release.host_outcomes import failed_rows, outcome_text
from quayside.release.host_report import HostReport
from quayside.runs.secrets import secret_value
from quayside.tasks.ledger import ledger_engine
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.release_report import artifact_key, publish_host_table
from quayside.tasks.release_resolve import resolve_release


@dataclass(frozen=True)
class ImageRelease:
    """One run's resolved input."""

    target: Target
    run: ImageRun
    choice: ImageChoice
    config: ReleaseConfig
    version_id: str

    def job(self, host: str) -> ImageJob:
        c, t = self.choice, self.target
        return ImageJob(
            host, dict(t.hosts)[host].address, self.run, t.app_name, t.env_name,
            c.version, c.digest, c.image, self.config.version, dict(self.config.files),
            self.config.rendered, c.artifact_path, c.artifact_sha256, c.auth, self.version_id,
        )  # fmt: skip

    @property
    def serves(self) -> str:
        return f"{self.choice.digest} config {self.config.version}"

    def details(self) -> dict[str, Any]:
        c = self.choice
        return {
            "version": c.version,
            "digest": c.digest,
            "image": c.image,
            "config_version": self.config.version,
            "config_files": dict(self.config.files),
            # per file, the variable versions its template read: what a rollback renders with
            "config_variables": {f: dict(v) for f, v in self.config.variables.items()},
            "config_service": self.run.config_service,
            "artifact_sha256": c.artifact_sha256,
            "serves": self.serves,
        }


class _Host:
    """A host's engine client and executor, opened once and closed after the run."""

    def __init__(self, target: Target, name: str) -> None:
        host = dict(target.hosts)[name]
        if host.docker is None:
            raise InputError(
                f"quayside.yaml: hosts.{name}.docker: not set; the hosts of an image app's "
                "environment need their Docker engine",
                hint=f"add docker: {{url: ...}} to hosts.{name}",
            )
        self.client = engine.connect(name, host.docker, login=host)
        self.executor: Executor = executor_for(name, host)

    def close(self) -> None:
        self.client.close()
        self.executor.close()


def release_image(
    *,
    app: str,
    env: str,
    version_or_digest: str,
    config_versions: Mapping[str, int] | None,
    expected_artifact_sha256: str | None,
    batch: int | str | None,
    requested_by: str,
    approval: bool,
    lock_wait_s: float,
    rollback_of: int | None,
    preapproved: CoveringApproval | None = None,
    variable_versions: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The body of :func:`quayside.flows.image_release.image_release` (its docstring says
    what it does and returns), run in a thread by ``run_release_body``.

    ``preapproved``: the approval an earlier gate of this run gave (a promotion's ``promote``
    gate) - passed in the process by the caller, never a flow parameter; the lifecycle accepts
    it for this release's gate only when the ledger says it belongs to this run and app/env,
    is approved and meets the policy (recorded as ``details["approval"]``)."""
    resolved = resolve_release({"app": app, "env": env}, requested_by)
    settings, inventory, requested_by = resolved.settings, resolved.inventory, resolved.requested_by
    target = resolved.must_target
    if target.app.image is None:
        raise InputError(
            f"{app} is not an image app (quayside.yaml: apps.{app}.image is not set)",
            hint=f"release it with `quayside deploy {app} {env} REF`",
        )
    run = target.app.image.run
    ledger = ledger_engine()
    choice = resolve_image(
        ledger,
        inventory,
        app,
        env,
        version_or_digest,
        expected_artifact_sha256,
        secrets=secret_value,
    )
    config = render_release_config(
        open_store(ledger), app, env, run.config_service, config_versions,
        box=SecretBox.from_home(settings.home), reader=open_reader(),
        variable_versions=variable_versions,
    )  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    rel = ImageRelease(target, run, choice, config, stamp)
    names = target.host_names
    hosts: dict[str, _Host] = {}
    try:
        opened = run_on_hosts(
            names, lambda h: _Host(target, h), max_parallel=target.env.max_parallel
        )
        for o in opened.outcomes:
            if o.value is not None:
                hosts[o.host] = o.value
        if not opened.ok:
            rows = [(o.host, "connect", o.message) for o in opened.failed]
            raise HostsFailed(
                f"{len(rows)} Docker host(s) cannot be reached; nothing changed", rows
            )
        now = _read(rel, hosts)
        if now and all(same for _, same in now.values()):
            get_run_logger().info("no change: every host serves %s already", rel.serves)
            return {
                "release": None, "result": "no change", "version": choice.version,
                "digest": choice.digest, "config_version": config.version,
                "hosts": {h: "no_change" for h in now}, "failed": [], "cleanup": {},
            }  # fmt: skip
        return _lifecycle(
            rel, hosts, now, requested_by, batch, approval, lock_wait_s, rollback_of, preapproved
        )
    finally:
        for h in hosts.values():
            h.close()


def _read(rel: ImageRelease, hosts: dict[str, _Host]) -> dict[str, tuple[str, bool]]:
    """What each host serves now, in words (for the plan), and whether it is the target."""
    t = rel.target

    def one(name: str) -> tuple[str, bool]:
        h = hosts[name]
        state = read_state(h.client, h.executor, rel.run, t.app_name, t.env_name)
        s = state.serving
        if s is None:
            return "nothing", False
        same = s.digest == rel.choice.digest and s.config_version == rel.config.version
        return f"{s.name}: {s.version} ({s.digest[:19]}, config {s.config_version[:12]})", same

    result = run_on_hosts(list(hosts), one, max_parallel=t.env.max_parallel)
    if not result.ok:
        rows = [(o.host, "read", o.message) for o in result.failed]
        raise HostsFailed(f"could not read {len(rows)} Docker host(s); nothing changed", rows)
    return {o.host: o.value for o in result.outcomes if o.value is not None}


def plan_markdown(rel: ImageRelease, now: Mapping[str, tuple[str, bool]], requested_by: str) -> str:
    c, t = rel.choice, rel.target
    files = ", ".join(f"{inline(f)} v{v}" for f, v in sorted(rel.config.files.items()))
    lines = [
        f"## Image release of {inline(t.app_name)}/{inline(t.env_name)}",
        "",
        f"- version: {code(c.version)}",
        f"- digest: {code(c.digest)}",
        f"- image: {code(c.image)}",
        f"- config: {code(rel.config.version[:16])} ({files or 'no config files'})",
        f"- artifact check: {code(c.artifact_sha256[:16]) if c.artifact_sha256 else 'none'}",
        f"- requested by: {inline(requested_by)}",
        "",
        "| host | serves now |",
        "| --- | --- |",
    ]
    lines += [
        f"| {inline(h)} | {inline(s)}{' (no change)' if same else ''} |"
        for h, (s, same) in now.items()
    ]
    return "\n".join(lines) + "\n"


def _lifecycle(
    rel: ImageRelease,
    hosts: dict[str, _Host],
    now: dict[str, tuple[str, bool]],
    requested_by: str,
    batch: int | str | None,
    approval: bool,
    lock_wait_s: float,
    rollback_of: int | None,
    preapproved: CoveringApproval | None,
) -> dict[str, Any]:
    t, c = rel.target, rel.choice
    names = t.host_names
    request = ReleaseRequest(
        t.app_name,
        t.env_name,
        ReleaseKind.image,
        version=c.version,
        requested_by=requested_by,
        shown=f"{c.version} ({c.digest[:19]})",
        fields={
            "image_digest": c.digest,
            **({"rollback_of_id": rollback_of} if rollback_of else {}),
        },
        details=rel.details(),
        lock_wait_s=lock_wait_s,
    )
    switched: dict[str, Switched] = {}

    def on_host(name: str) -> HostReport:
        h = hosts[name]
        report, done = release_on_host(h.client, h.executor, rel.job(name))
        if done is not None:
            switched[name] = done
        return report

    def back(report: HostReport) -> str:
        h = hosts[report.host]
        return restore_on_host(h.client, h.executor, rel.job(report.host), switched[report.host])

    with ReleaseLifecycle(request, t) as life:
        life.approve(
            lambda: plan_markdown(rel, now, requested_by),
            asked=approval,
            policy_kind="rollback" if rollback_of else "deploy",
            covered_by=preapproved,
        )
        life.lock()
        life.start()
        applied = life.apply(
            names,
            on_host,
            action="image release",
            batch_size=batch_size(batch if batch is not None else t.env.batch, len(names)),
            failure_limit=failure_limit(t.env.failure_threshold, len(names)),
        )
        key = artifact_key("image-release", t.app_name, t.env_name)
        if applied.stopped:
            life.restore(applied, back, action="restore")
            _table(key, rel, applied.reports, applied.skipped)
            raise life.fail_threshold(applied)
        _table(key, rel, applied.reports, applied.skipped)
        bad = applied.bad
        text = f"{len(applied.changed)} of {len(names)} host(s) now serve {c.version}"
        if bad:
            text += f"; {len(bad)} failed (old container kept serving)"
        # every host failed (within the tolerance): the version serves nowhere - failed
        none_serve = bool(bad) and len(bad) == len(applied.reports)
        life.finish(
            ReleaseStatus.failed if none_serve else ReleaseStatus.succeeded,
            event="failed" if none_serve else "succeeded",
            text=outcome_text(text, failed_rows(applied.reports)),
            summary={"hosts": len(names), "changed": len(applied.changed), "failed": len(bad)},
            details={"failed_hosts": [r.host for r in bad]},
        )
        if none_serve:
            raise HostsFailed(
                f"every host failed ({len(bad)} of {len(names)}); the old containers kept "
                f"serving: {c.version} serves nowhere",
                failed_rows(applied.reports),
            )
        cleaned = _finish_hosts(rel, hosts, switched)  # under the lock: no release races it
    return {
        "release": life.row,
        "result": "released",
        "version": c.version,
        "digest": c.digest,
        "config_version": rel.config.version,
        "hosts": {r.host: r.status for r in applied.reports},
        "failed": [r.host for r in applied.bad],
        "cleanup": cleaned,
    }


def _finish_hosts(
    rel: ImageRelease, hosts: dict[str, _Host], switched: dict[str, Switched]
) -> dict[str, str]:
    """Remove the old containers and prune images (never a digest a kept release names); a
    failure here is only a warning, the release stands."""
    t = rel.target
    protected = protected_digests(ledger_engine(), t.app_name, t.env_name, rel.run.keep_images)
    protected.add(rel.choice.digest)

    def one(name: str) -> str:
        h = hosts[name]
        return finish_on_host(h.client, h.executor, rel.job(name), switched[name], protected)

    result = run_on_hosts(list(switched), one, max_parallel=t.env.max_parallel)
    for o in result.failed:
        get_run_logger().warning("%s: cleanup after the release failed: %s", o.host, o.message)
    return {
        o.host: str(o.value) if o.ok else f"cleanup failed: {o.message}" for o in result.outcomes
    }


def _table(key: str, rel: ImageRelease, reports: list[HostReport], skipped: list[str]) -> None:
    t = rel.target
    try:
        publish_host_table(
            key,
            f"image release of {inline(t.app_name)}/{inline(t.env_name)} "
            f"{inline(rel.choice.version)}",
            reports,
            skipped,
        )
    except Exception as e:  # the release stands without its table
        get_run_logger().warning("could not publish the per-host table: %s", e)
