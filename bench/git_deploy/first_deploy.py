"""``git_deploy_fanout``: the first release of the app to every host, by Quayside's
``git_deploy`` flow, a serial rsync loop, 20 parallel rsyncs and Ansible (default forks and
forks=20); and, as context, one Quayside run through the API and the process worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.git_deploy.ansible_runs import Ansible
from bench.git_deploy.app import TAG_V1
from bench.git_deploy.quayside_runs import AppNames
from bench.git_deploy.recorder import Spec
from bench.git_deploy.roots import verify
from bench.git_deploy.session import Session
from bench.harness import ToolResult, log


@dataclass
class FirstDeploy:
    """The tools' results, and the worker-path run (seconds, or why there is none)."""

    tools: list[ToolResult] = field(default_factory=list)
    worker_s: float | None = None
    worker_reason: str | None = None


def measure_first_deploy(session: Session) -> FirstDeploy:
    """Every tool deploys the first tag into fresh deploy roots, ``repeat`` times each."""
    log("git_deploy_fanout: first deploy of the app to every host")
    quayside, quayside_reason = session.quayside, session.quayside_reason
    app, roots, base, rec = session.app, session.roots, session.rsync, session.recorder
    fleet = session.fleet
    hosts = fleet.hosts
    ansible = Ansible(session.work, hosts, fleet.key_file, fleet.known_hosts)
    no_ansible = None if ansible.available else "ansible-playbook not found in the venv"
    fanout_app = AppNames("fanout")

    def quayside_fanout() -> Any:
        assert quayside is not None
        return quayside.deploy(roots.label, TAG_V1)

    result = FirstDeploy(worker_reason=quayside_reason)
    result.tools = [
        rec.tool(
            Spec(
                "quayside",
                "Quayside `git_deploy` flow",
                "the flow called in-process against the running Prefect server: fetch "
                "the bare mirror and resolve the tag, export the tree, content "
                "manifest, artifact store, ledger, transfer to every host in parallel "
                "(max_parallel = hosts), atomic switch, prune; not server or worker "
                "start-up",
            ),
            quayside_fanout,
            setup=lambda: roots.use(fanout_app.next()),
            check=session.check(app.v1_tree),
            unavailable=None if quayside else quayside_reason,
        ),
        rec.tool(
            Spec(
                "serial_rsync",
                "serial loop: rsync + ssh per host",
                "for each host in turn: `rsync -a --mkpath` of the exported tree into "
                "releases/<id>, then one ssh running the atomic symlink switch; the "
                "git export is done beforehand and not timed",
            ),
            base.serial_v1,
            setup=lambda: roots.new("serial"),
            check=session.check(app.v1_tree),
        ),
        rec.tool(
            Spec(
                "parallel_rsync",
                f"{len(hosts)} rsyncs in parallel",
                "the same rsync + ssh switch per host, every host at once (one thread each)",
            ),
            base.parallel_v1,
            setup=lambda: roots.new("parallel"),
            check=session.check(app.v1_tree),
        ),
        rec.tool(
            Spec(
                "ansible_forks5",
                "Ansible, default forks (5)",
                "one `ansible-playbook` run (process start, SSH with its default "
                "ControlPersist): `file` mkdir, `unarchive` of the release tar.gz "
                "(made by `git archive` beforehand, not timed), `file` state=link",
            ),
            lambda: ansible.deploy(None, roots.path, base.v1, app.v1_tarball),
            setup=lambda: roots.new("ansible5"),
            check=session.check(app.v1_tree),
            unavailable=no_ansible,
        ),
        rec.tool(
            Spec("ansible_forks20", "Ansible, forks=20", "the same playbook, `--forks 20`"),
            lambda: ansible.deploy(20, roots.path, base.v1, app.v1_tarball),
            setup=lambda: roots.new("ansible20"),
            check=session.check(app.v1_tree),
            unavailable=no_ansible,
        ),
    ]
    if quayside is not None:
        log("  quayside worker path: one run through the API and the process worker")
        roots.use("worker-0")
        try:
            result.worker_s = round(quayside.worker_run("worker-0", TAG_V1), 3)
            verify(hosts, roots, app.v1_tree)
            log(f"  worker path: {result.worker_s:.2f} s")
        except Exception as e:
            result.worker_s = None
            result.worker_reason = f"failed in this run: {str(e).strip()[:300]}"
            log(f"  worker path FAILED: {e}")
        roots.purge()
    return result
