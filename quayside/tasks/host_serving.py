"""What each host of a git target serves now (its ``current`` release), read before the
approval gate: a re-deploy of what every host already serves needs nobody's approval, and an
approver sees per host what would change."""

from __future__ import annotations

from quayside.deploy.host_plan import read_host_facts
from quayside.deploy.scripts import host_deploy_root
from quayside.executors.factory import executor_for
from quayside.inventory.resolve import Target
from quayside.markdown_text import cell, code
from quayside.release_id import is_release_of
from quayside.tasks.fanout import fan_out


def serving_releases(target: Target) -> dict[str, str | None]:
    """Host -> the release id its ``current`` link points at (None: no release, or its facts
    could not be read - either way a deploy would have to look), one round trip per host."""
    hosts = dict(target.hosts)

    def read(name: str) -> str | None:
        executor = executor_for(name, hosts[name])
        try:
            return read_host_facts(executor, host_deploy_root(target.deploy_root, name)).current
        finally:
            executor.close()

    result = fan_out("read facts", read, target.host_names, target.env.max_parallel)
    return {o.host: o.value if o.ok else None for o in result.outcomes}


def all_serve(serving: dict[str, str | None], commit_sha: str) -> bool:
    """True if every host serves a release of ``commit_sha`` (and there are hosts)."""
    return bool(serving) and all(is_release_of(rid, commit_sha) for rid in serving.values())


def serving_markdown(serving: dict[str, str | None], commit_sha: str) -> str:
    """The approval description's per-host plan: host -> change / no change, and what it
    serves now."""
    lines = ["## Hosts", "", "| host | plan | serves now |", "| --- | --- | --- |"]
    for host, rid in serving.items():
        plan = "no change" if is_release_of(rid, commit_sha) else "change"
        now = code(rid, in_table=True) if rid else "nothing (or facts unreadable)"
        lines.append(f"| {cell(host)} | {plan} | {now} |")
    return "\n".join(lines)
