"""One host's rollback: switch to a release it still has (one round trip), or restore it
from the artifact store first; then post-switch hooks and the health check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from quayside.commands.release import current_link, read_facts, release_dir
from quayside.deploy import scripts
from quayside.deploy.health import check_health
from quayside.deploy.hooks import run_hooks
from quayside.deploy.host_plan import read_host_facts
from quayside.deploy.release_spec import RollbackSpec, host_env
from quayside.deploy.round_trips import LogLine, RoundTrips
from quayside.deploy.rsync_upload import rsync_files
from quayside.executors.base import Executor
from quayside.manifest import MANIFEST_FILENAME, Manifest
from quayside.plans.release import prune_candidates
from quayside.release import stopping
from quayside.release.host_report import HostReport, failure_message


def rollback_host(
    executor: Executor,
    host: str,
    spec: RollbackSpec,
    *,
    fetch_payload: Callable[[], Path],
    on_line: LogLine | None = None,
) -> HostReport:
    """Switch one host to ``spec.release_id``: one round trip when the release is on the host;
    otherwise the payload from ``fetch_payload()`` (the artifact store) is sent first (rsync
    with ``--link-dest`` to the host's current release), then shared paths, manifest, switch.
    Post-switch hooks and the health check run afterwards. Never raises for host failures.
    """
    trips = RoundTrips(executor, host, on_line)
    report = HostReport(host, "failed", "switch")
    try:
        root = spec.root_for(host)
        switch = scripts.switch_if_complete(
            root, spec.release_id, spec.keep_releases, spec.protected
        )
        with stopping.switching(host, "the rollback's switch"):
            out = trips.run(switch, timeout=120)
        if out.strip() == "missing":
            report = replace(report, step="restore")
            out, sent = restore(trips, spec, root, fetch_payload())
            report = replace(report, bytes_sent=sent, message="restored from store")
        previous = out.strip().partition("switched:")[2] or None
        report = replace(report, switched=True, previous=previous, step="post_switch")
        env = host_env(spec, host, root)
        env["QUAYSIDE_ROLLBACK"] = "1"
        cwd = current_link(root)
        run_hooks(trips, spec.hooks.post_switch, env, cwd, "post-switch")
        if spec.health is not None:
            report = replace(report, step="health")
            address = executor.address
            check_health(trips, spec.health, host=host, address=address, env=env, cwd=cwd)
        return trips.report(report, status="succeeded", step="done")
    except Exception as e:  # reported per host
        message = failure_message(e, host)
        if report.message:
            message = f"{report.message}; {message}"
        return trips.report(report, status="failed", message=message)


def restore(trips: RoundTrips, spec: RollbackSpec, root: str, payload: Path) -> tuple[str, int]:
    """Put a pruned release back on the host from its stored ``payload`` and switch to it:
    a fresh dir, rsync (hard links to the current release's unchanged files), then shared
    links, the manifest and the switch. Returns the switch's output and the bytes sent."""
    manifest = Manifest.from_json((payload / MANIFEST_FILENAME).read_text())
    facts = read_host_facts(trips.executor, root)
    trips.count(read_facts(root))
    files = [p for p in manifest if p != MANIFEST_FILENAME]
    fresh = scripts.stage(scripts.StageRequest(root, spec.release_id, mode="fresh"))
    trips.run(fresh.argv, env=fresh.env)
    _, sent = rsync_files(
        trips.executor,
        payload,
        release_dir(root, spec.release_id),
        files,
        link_dest=release_dir(root, facts.current) if facts.current else None,
    )
    body = manifest.with_shared(spec.shared_paths).to_json().encode()
    prune: tuple[str, ...] = ()
    if spec.keep_releases is not None:
        prune = prune_candidates(
            facts.releases,
            new=spec.release_id,
            current=facts.current,
            keep_releases=spec.keep_releases,
            protected=spec.protected,
        )
    seal = scripts.StageRequest(
        root,
        spec.release_id,
        mode="keep",
        extract="manifest",
        payload_bytes=len(body),
        shared=sorted(spec.shared_paths),
        switch=True,
        prune=prune,
    )
    command = scripts.stage(seal)
    with stopping.switching(trips.host, "the restored release's switch"):
        out = trips.run(command.argv, env=command.env, stdin=scripts.stage_stdin(seal, body))
    return out, sent + len(body)
