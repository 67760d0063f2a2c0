"""What a user does without Quayside: rsync each release into ``releases/<id>`` (serially,
in parallel, or with ``--link-dest`` against the previous release) and switch ``current``
with one ssh per host, on the same hosts and payload as Quayside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.git_deploy.app import App
from bench.git_deploy.fleet import Host, each_host
from bench.git_deploy.roots import Roots
from bench.harness import run_argv
from quayside.commands.release import switch_current_script
from quayside.commands.rsync import parse_rsync_stats, rsync_push
from quayside.release_id import new_release_id


def release_id(sha: str, offset_s: int = 0) -> str:
    """A release id as Quayside names them, at a fixed time (the same ids every run)."""
    return new_release_id(sha, datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC) + timedelta(0, offset_s))


def rsync_release_argv(
    host: Host, deploy_root: str, tree: Path, release: str, link_dest: str | None = None
) -> list[str]:
    """``rsync -a --stats --mkpath`` of ``tree`` into ``<deploy_root>/releases/<release>`` on
    ``host`` (``--link-dest``: unchanged files become hard links into that release)."""
    dest = host.dest(f"{deploy_root}/releases/{release}")
    argv = rsync_push(tree, dest, host.ssh_argv, link_dest=link_dest)
    argv.insert(argv.index("--"), "--mkpath")
    return argv


class RsyncRuns:
    """rsync + ssh switch per host, on the same hosts and payload as Quayside."""

    def __init__(self, hosts: list[Host], roots: Roots, app: App) -> None:
        self.hosts = list(hosts)
        self.roots = roots
        self.app = app
        self.v1 = release_id(app.v1_sha)
        self.v2 = release_id(app.v2_sha, 60)

    def rsync_release(
        self, host: Host, tree: Path, release: str, link_dest: str | None = None
    ) -> int:
        """rsync ``tree`` into ``releases/<release>`` (parents created); bytes sent."""
        argv = rsync_release_argv(host, self.roots.path, tree, release, link_dest)
        return parse_rsync_stats(run_argv(argv)).bytes_sent

    def switch(self, host: Host, release: str) -> None:
        run_argv(host.ssh(switch_current_script(self.roots.path, release)))

    def deploy_host(
        self, host: Host, tree: Path, release: str, link_dest: str | None = None
    ) -> int:
        sent = self.rsync_release(host, tree, release, link_dest)
        self.switch(host, release)
        return sent

    def serial_v1(self) -> list[int]:
        return [self.deploy_host(h, self.app.v1_tree, self.v1) for h in self.hosts]

    def parallel_v1(self) -> list[int]:
        return each_host(self.hosts, lambda h: self.deploy_host(h, self.app.v1_tree, self.v1))

    def parallel_v2_link_dest(self) -> list[int]:
        link = f"{self.roots.path}/releases/{self.v1}"
        return each_host(self.hosts, lambda h: self.deploy_host(h, self.app.v2_tree, self.v2, link))

    def parallel_switch_to_v1(self) -> None:
        each_host(self.hosts, lambda h: self.switch(h, self.v1))
