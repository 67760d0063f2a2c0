"""The host work of Quayside's approach with nothing else (no Prefect, no ledger, no
planning), told what changed: context for the one-file release, not a ratio."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

from bench.git_deploy.app import CHANGED_FILE
from bench.git_deploy.fleet import Host, each_host
from bench.git_deploy.rsync_runs import RsyncRuns
from bench.harness import run_argv
from quayside.executors.ssh import remote_command

#: $1 deploy root, $2 previous release, $3 new release; the changed files' tar on stdin
ONE_TRIP_SCRIPT = (
    'set -e; cd -- "$1"; cp -al -- "releases/$2" "releases/$3"; tar -x -C "releases/$3"; '
    'ln -sfn -- "releases/$3" .current.tmp; mv -T -- .current.tmp current'
)


def tar_of(tree: Path, names: Sequence[str]) -> bytes:
    """An uncompressed tar of ``names`` (relative to ``tree``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in names:
            archive.add(tree / name, arcname=name)
    return buffer.getvalue()


def one_trip_argv(host: Host, deploy_root: str, previous: str, new: str) -> list[str]:
    """The one ssh call of the floor on ``host`` (Quayside's bulk OpenSSH options)."""
    argv = ["sh", "-c", ONE_TRIP_SCRIPT, "one-trip", deploy_root, previous, new]
    ssh = list(host.bulk_ssh_argv or host.ssh_argv)
    return [*ssh, f"{host.user}@{host.address}", remote_command(argv)]


def parallel_one_trip_v2(runs: RsyncRuns) -> None:
    """Per host ONE ssh running ``cp -al`` of the previous release, extracting a tar of the
    changed file from stdin and switching ``current``; every host at once. The hosts must
    hold the first release in the current deploy root."""
    changed = tar_of(runs.app.v2_tree, [CHANGED_FILE])
    root = runs.roots.path

    def one(host: Host) -> None:
        run_argv(one_trip_argv(host, root, runs.v1, runs.v2), stdin=changed)

    each_host(runs.hosts, one)
