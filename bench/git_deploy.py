"""Git deploy to 20 sshd hosts: Quayside's ``git_deploy`` / ``rollback`` flows against a serial
rsync loop, 20 parallel rsyncs, Ansible (default forks and forks=20) and parallel
``rsync --link-dest``, all in one run on the same generated app.

Three results: ``git_deploy_fanout`` (first deploy), ``git_deploy_incremental`` (a release with
one changed file) and ``git_deploy_rollback`` (back to the previous release).

Hosts are real sshd processes on 127.0.0.11, .12, ... (:class:`testbed.sshd.SshdFleet`).
They share this machine's filesystem, so each sshd runs in its own mount namespace where its
own deploy root is bind-mounted over one common path (``DEPLOY_ROOT``): every tool, Quayside
included, sees one ``deploy_root`` and twenty independent hosts, as in production.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.harness import (
    BENCH_DIR,
    PROJECT_DIR,
    Options,
    Timing,
    ToolResult,
    log,
    machine_info,
    make_entry,
    measure_steps,
    reproduce_command,
    run_argv,
)
from quayside.commands.release import switch_current_script
from quayside.commands.rsync import parse_rsync_stats, remote_dest, rsync_push
from quayside.executors.ssh import SSHExecutor, remote_command
from quayside.release_id import new_release_id

NAME = "git_deploy"
COMMAND = reproduce_command(NAME)
PLAYBOOK = BENCH_DIR / "playbooks" / "git_deploy.yml"

FILES = 5_000
TOTAL_BYTES = 50 * 1000 * 1000
DIRECTORIES = 50
SEED = 20240501
CHANGED_FILE = "app/module_07/part_042.dat"
TAG_V1 = "v1.0.0"
TAG_V2 = "v1.0.1"
ENV = "bench"

LOGIN_NOTE = (
    "Every tool logs in to the hosts as `quayside-deploy`, a system user with /bin/sh as its "
    "shell, as deploy accounts are: no rc file runs per SSH command. (Logged in as root on "
    "this machine, every SSH command would first run root's ~/.bashrc, which runs "
    "`pyenv init`: about 0.12 s of CPU per command, for every tool.)"
)
EMPTY_FLOW_NOTE = (
    "`prefect_empty_flow_s`: an `async` flow that does nothing, called in-process against the "
    "same server, median of the same number of runs: the floor of Quayside's flows, which are "
    "async flows running their blocking body in a thread. `prefect_empty_sync_flow_s`: the "
    "same flow declared with plain `def`; Prefect 3.8's sync engine ends by joining the "
    "flow's heartbeat thread, which sleeps in whole seconds, so a sync flow's wall time is "
    "its body rounded up to the next whole second."
)
FLOOR_NOTE = (
    "`host_work_floor_s` (context, not in the ratios): the host work of Quayside's approach "
    "with nothing else - no Prefect, no ledger, no planning - told what changed: per host one "
    "ssh (Quayside's OpenSSH options) running `cp -al` of the previous release, extracting a "
    "tar of the changed file from stdin and switching `current`, every host at once. "
    "`prefect_flow_noop_task_per_host_s`: an async flow (as Quayside's) whose body submits "
    "one no-op task per host and waits for them, against the same server: what per-host task "
    "runs cost, which is why the release flows run a group of hosts in ONE task run "
    "(quayside.tasks.fanout.fan_out). The release flow costs about the floor, an empty flow "
    "and its own work (build, manifest, plan, ledger, artifacts)."
)
PREPARED_NOTE = (
    "After a switch, each Quayside host makes a hard-link copy of the new release in the "
    "background (`.quayside-next-<id>`, quayside.deploy.scripts), which the next deploy "
    "renames into its new release directory instead of running `cp -al` of 5,000 files while "
    "it deploys. The copy starts 3 s after the switch (`NEXT_DELAY_S`), only if that release "
    "still serves, at nice 19 with its session's CPU share lowered: started at once, the 20 "
    "copies on this one machine took the CPU from the rest of the release (Linux shares CPU "
    "between sessions before nice applies; measured: 1.75 s against 1.15 s per release). On "
    "a real fleet each host copies on its own CPU. Before each timed Quayside release the "
    "benchmark waits (untimed) until every host has made it - the hosts are idle, as between "
    "two deploys; `quayside_hosts_prepared_after_s` is how long that took after the previous "
    "release returned. Without the copy (a release less than 3 s after the last one, a host "
    "deployed by something else, a rollback in between) the deploy falls back to `cp -al`."
)
WARM_NOTE = (
    "SSH connections: Quayside runs host commands through the OpenSSH client on a master "
    "connection per host kept open 60 s after its last command (ControlPersist, the inventory's "
    "`persist_s`; Ansible's default is the same), so the timed release reuses the connections "
    'its untimed first release opened moments before. The row "no persisted SSH '
    'connections" is the same release to the same hosts listed with `persist_s: 0` (a new '
    "paramiko connection per host, what a release more than 60 s after the last command "
    "to a host costs); `parallel_rsync_link_dest_vs_quayside_cold` is rsync's time over that "
    "row's. The rsync baselines open new connections, as users run them."
)
LOG_LEVEL_NOTE = (
    "The Quayside flows are called in-process with `PREFECT_LOGGING_LEVEL=WARNING` (a quiet "
    "console for the benchmark): their INFO lines are neither printed nor sent to the Prefect "
    "API. Runs started through the worker log at INFO."
)
LOOPBACK_NOTE = (
    "All hosts are sshd processes on loopback (127.0.0.11 and up) on this one machine: "
    "network transfer is memory copies, and every host's sshd, rsync and tar compete with "
    "the tool itself for the same {cores} cores."
)
HOST_DISK_NOTE = (
    "The hosts' directories (deploy roots) are on one tmpfs: a real fleet writes to 20 "
    "disks, these 20 hosts would otherwise share this virtual machine's one disk, where "
    "creating files costs 0.1 to 0.5 ms each and varies run to run by up to 20x (measured "
    "here: 5,000 file creates took 0.09 s to 1.9 s; a 5,000-file tar extracted in 0.6 s on "
    "tmpfs and 2.9 s on the disk). On the disk, every tool's first deploy was bound by file "
    "creation, 20 x 5,000 of them, and the figures measured the disk more than the tools."
)
HOST_DISK_FALLBACK_NOTE = (
    "The hosts' directories are on this machine's one disk ({reason}): first deploys are "
    "bound by file creation there (20 x 5,000 files on one virtual disk) and vary widely."
)

TRANSFER_NOTE = (
    "How Quayside sends a first release: one tar file packed once by GNU tar, streamed to each "
    "host through the OpenSSH client into the same one-round-trip stage script (extract, link "
    "shared paths, seal the manifest, switch). For these bulk transfers it asks OpenSSH for "
    "AES-GCM and the curve25519 key exchange first; the rsync and Ansible runs use OpenSSH's "
    "defaults (ChaCha20-Poly1305, sntrup761x25519), as users run them. Measured separately "
    "here: OpenSSH's default key exchange costs about 0.17 CPU-s per connection, and on the "
    "same tmpfs hosts 20 parallel `tar | ssh` took 4.2 to 6.7 s where 20 parallel rsyncs took "
    "11.5 to 12.9 s."
)

BACK_TO_BACK_NOTE = (
    "Timed Quayside runs follow each other back to back (first release untimed, then the "
    "timed next release, then the timed rollback), against the platform's Prefect server as "
    "`quayside up` runs it. Right after a release, the embedded server's SQLite database is "
    "busy recording that run's 20+ task runs, and Prefect's server answered the next flow "
    'run\'s first API call with a retryable 503 ("database is locked"), after which '
    "Prefect's client waits about 2 s; measured before the fix, back to back: rollbacks of "
    "0.9 to 4.0 s. `quayside up` now retries such requests inside the server "
    "(quayside.stack.busy_retry)."
)

MIRROR_NOTE = (
    "Before the timed runs, one untimed release and the next go to another app of the same "
    "repository. Quayside keeps one checked-out tree per repository (updated by git with only "
    "the files that differ) and git's index records file timestamps in whole seconds: files "
    'written in the same second as the index are "racily clean", and the next update '
    "re-reads all of them once (measured: 0.39 s for these 5,000 files / 50 MB, then 0.01 s). "
    "That is a one-time cost per repository after its first checkout; the timed runs measure "
    "the steady state. In earlier runs without this warm-up, the first timed release was the "
    "slowest of the three in five bench runs out of six."
)

#: Static text shown with each result in docs/benchmarks.md (not measured here).
CONTEXT = {
    "git_deploy_fanout": (
        "Reference figures from issue 3 (measured earlier on this kind of machine: 2 cores, 20 "
        "hosts, same payload): Ansible 103 s (default forks) and 97 s (forks=20), serial rsync "
        "loop 49 s, 20 parallel rsyncs 21 s. Goal: at least 5x faster than Ansible with "
        "default forks and no slower than 20 parallel rsyncs."
    ),
    "git_deploy_incremental": (
        "Reference (issue 3): parallel `rsync --link-dest` 17 s. Goal: under 3 s wall and at "
        "least 5x faster than parallel `rsync --link-dest`, under 100 KB sent per host."
    ),
    "git_deploy_rollback": "Goal (issue 3): 20 hosts in under 2 s, no re-transfer.",
}

# -- the generated app -----------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    """The generated git repository, its two tags and their exported trees."""

    repo: Path
    v1_sha: str
    v2_sha: str
    v1_tree: Path
    v2_tree: Path
    v1_tarball: Path
    files: int
    total_bytes: int


def file_layout(files: int = FILES, total: int = TOTAL_BYTES, seed: int = SEED) -> list[tuple]:
    """``(relative path, size)`` for every file: deterministic for a seed, sizes spread from
    about 0.2x to 1.8x the mean, summing to exactly ``total``."""
    rng = random.Random(seed)
    mean = total / files
    sizes = [int(mean * rng.uniform(0.2, 1.8)) for _ in range(files)]
    sizes[-1] += total - sum(sizes)
    per_dir = -(-files // DIRECTORIES)
    return [
        (f"app/module_{i // per_dir:02d}/part_{i % per_dir:03d}.dat", size)
        for i, size in enumerate(sizes)
    ]


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ)
    env.update(
        {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@localhost",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@localhost",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(repo.parent),
        }
    )
    return run_argv(["git", "-C", str(repo), *args], env=env).strip()


def export_tree(repo: Path, ref: str, dest: Path) -> None:
    tar = dest.with_suffix(".tar")
    git(repo, "archive", "--format=tar", "-o", str(tar), ref)
    dest.mkdir(parents=True)
    run_argv(["tar", "-xf", str(tar), "-C", str(dest)])
    tar.unlink()


def make_app(work: Path) -> App:
    """A git repo of ``FILES`` files of ``os.urandom`` data (incompressible) tagged
    ``TAG_V1``, and ``TAG_V2`` with ``CHANGED_FILE`` rewritten; both trees exported and a
    tar.gz of ``TAG_V1`` (Ansible's input)."""
    repo = work / "app-repo"
    repo.mkdir()
    layout = file_layout()
    for path, size in layout:
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(size))
    (repo / "README.md").write_text("Generated by bench/git_deploy.py\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", TAG_V1)
    v1 = git(repo, "rev-parse", "HEAD")
    changed = repo / CHANGED_FILE
    changed.write_bytes(os.urandom(changed.stat().st_size))
    git(repo, "commit", "-q", "-am", "v2: one file changed")
    git(repo, "tag", TAG_V2)
    v2 = git(repo, "rev-parse", "HEAD")
    export_tree(repo, TAG_V1, work / "tree-v1")
    # The next release's tree as a CI workspace has it after `git checkout TAG_V2`: unchanged
    # files keep their timestamps, the changed one is new (rsync's quick check relies on it).
    run_argv(["cp", "-a", str(work / "tree-v1"), str(work / "tree-v2")])
    changed_copy = work / "tree-v2" / CHANGED_FILE
    changed_copy.write_bytes(changed.read_bytes())
    # checked out later than v1 was exported: rsync's quick check compares whole seconds, and
    # on a fast machine the write can land in the second of v1's commit time
    later = time.time() + 3600
    os.utime(changed_copy, (later, later))
    tarball = work / "v1.tar.gz"
    git(repo, "archive", "--format=tar.gz", "-o", str(tarball), TAG_V1)
    return App(
        repo=repo,
        v1_sha=v1,
        v2_sha=v2,
        v1_tree=work / "tree-v1",
        v2_tree=work / "tree-v2",
        v1_tarball=tarball,
        files=len(layout),
        total_bytes=sum(size for _, size in layout),
    )


# -- the fleet -------------------------------------------------------------------------------

SSHD_WRAPPER = """\
#!/bin/sh
# sshd in its own mount namespace with <host dir>/root bound over the common deploy root.
# Called by SshdHost.start as: <this> -D -e -f <host dir>/sshd_config
set -eu
cfg=
prev=
for a in "$@"; do
  if [ "$prev" = "-f" ]; then cfg=$a; fi
  prev=$a
done
root="$(dirname -- "$cfg")/root"
exec unshare --mount --propagation private /bin/sh -c \\
  'mount --bind -- "$1" "$2" && shift 2 && exec "$@"' sshd-ns "$root" {mount} {sshd} "$@"
"""


def sshd_wrapper(path: Path, mount_point: Path) -> Path:
    """Write the namespacing sshd wrapper (an executable script) to ``path``."""
    from testbed.sshd import SshdError, find_binary

    sshd = find_binary("sshd")
    if sshd is None or shutil.which("unshare") is None:
        raise SshdError("sshd (openssh-server) and unshare (util-linux) are needed")
    path.write_text(
        SSHD_WRAPPER.format(mount=shlex.quote(str(mount_point)), sshd=shlex.quote(sshd))
    )
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int
    user: str
    ssh_argv: list[str]
    root: Path  # this host's deploy root as seen from here (bind-mounted on the host side)
    bulk_ssh_argv: tuple[str, ...] = ()  # the OpenSSH options Quayside uses for its stage

    def dest(self, path: str) -> str:
        return remote_dest(self.user, self.address, path)

    def ssh(self, argv: Sequence[str]) -> list[str]:
        return [*self.ssh_argv, f"{self.user}@{self.address}", remote_command(argv)]


# -- baselines -------------------------------------------------------------------------------


def release_id(sha: str, offset_s: int = 0) -> str:
    return new_release_id(sha, datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC) + timedelta(0, offset_s))


class Roots:
    """A new deploy root per timed run, ``<mount>/<label>`` on every host, so a run never
    waits for the previous one's files to be deleted; :meth:`purge` deletes them between
    tools (untimed)."""

    def __init__(self, mount: Path, hosts: Sequence[Host]) -> None:
        self.mount = mount
        self.hosts = list(hosts)
        self.label = "unset"
        self.count = 0

    def new(self, kind: str) -> str:
        self.count += 1
        return self.use(f"{kind}-{self.count}")

    def use(self, label: str) -> str:
        self.label = label
        return self.path

    @property
    def path(self) -> str:
        """The current deploy root as every host sees it."""
        return f"{self.mount}/{self.label}"

    def local(self, host: Host) -> Path:
        """The current deploy root of ``host`` as seen from here."""
        return host.root / self.label

    def wait_prepared(self, timeout_s: float = 60) -> float:
        """Wait until every host holds the copy of its current release that Quayside's hosts
        make in the background after a switch (``scripts.NEXT_PREFIX``): the hosts are idle
        then, as between two deploys. Returns the seconds waited (untimed)."""
        from quayside.deploy.scripts import NEXT_PREFIX

        started = time.perf_counter()
        pending = list(self.hosts)
        while pending:
            pending = [
                h
                for h in pending
                if not any(
                    p.is_dir() and ".tmp-" not in p.name
                    for p in self.local(h).glob(f"{NEXT_PREFIX}*")
                )
            ]
            if not pending:
                break
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"{len(pending)} host(s) did not prepare the next release")
            time.sleep(0.02)
        return time.perf_counter() - started

    def purge(self) -> None:
        """Delete every deploy root on every host (one ``rm -rf`` per host, in parallel;
        again if a host's background copy was still writing into one)."""
        started = time.perf_counter()

        def purge_host(h: Host) -> None:
            for attempt in range(20):
                entries = [str(p) for p in h.root.iterdir()]
                if not entries:
                    return
                try:
                    run_argv(["rm", "-rf", "--", *entries])
                    return
                except Exception:
                    if attempt == 19:
                        raise
                    time.sleep(0.25)

        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            list(pool.map(purge_host, self.hosts))
        log(f"  (deleted old deploy roots in {time.perf_counter() - started:.0f} s, untimed)")


class Baselines:
    """What a user would do without Quayside, on the same hosts and payload."""

    def __init__(self, hosts: Sequence[Host], roots: Roots, app: App) -> None:
        self.hosts = list(hosts)
        self.roots = roots
        self.app = app
        self.v1 = release_id(app.v1_sha)
        self.v2 = release_id(app.v2_sha, 60)

    def rsync_release(
        self, host: Host, tree: Path, release: str, link_dest: str | None = None
    ) -> int:
        """rsync ``tree`` into ``releases/<release>`` (parents created); bytes sent."""
        dest = host.dest(f"{self.roots.path}/releases/{release}")
        argv = rsync_push(tree, dest, host.ssh_argv, link_dest=link_dest)
        argv.insert(argv.index("--"), "--mkpath")
        return parse_rsync_stats(run_argv(argv)).bytes_sent

    def switch(self, host: Host, release: str) -> None:
        run_argv(host.ssh(switch_current_script(self.roots.path, release)))

    def deploy_host(
        self, host: Host, tree: Path, release: str, link_dest: str | None = None
    ) -> int:
        sent = self.rsync_release(host, tree, release, link_dest)
        self.switch(host, release)
        return sent

    def parallel(self, fn: Callable[[Host], Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            return list(pool.map(fn, self.hosts))

    def serial_v1(self) -> list[int]:
        return [self.deploy_host(h, self.app.v1_tree, self.v1) for h in self.hosts]

    def parallel_v1(self) -> list[int]:
        return self.parallel(lambda h: self.deploy_host(h, self.app.v1_tree, self.v1))

    def parallel_v2_link_dest(self) -> list[int]:
        link = f"{self.roots.path}/releases/{self.v1}"
        return self.parallel(lambda h: self.deploy_host(h, self.app.v2_tree, self.v2, link))

    def parallel_switch_to_v1(self) -> None:
        self.parallel(lambda h: self.switch(h, self.v1))

    def parallel_one_trip_v2(self) -> None:
        """The floor of Quayside's approach, told what changed: per host ONE ssh (Quayside's
        OpenSSH options) running ``cp -al`` of the previous release, extracting a tar of the
        changed file from stdin and switching ``current``; every host at once."""
        changed = tar_of(self.app.v2_tree, [CHANGED_FILE])
        root = self.roots.path
        argv = ["sh", "-c", ONE_TRIP_SCRIPT, "one-trip", root, self.v1, self.v2]

        def one(host: Host) -> None:
            ssh = list(host.bulk_ssh_argv or host.ssh_argv)
            run_argv([*ssh, f"{host.user}@{host.address}", remote_command(argv)], stdin=changed)

        self.parallel(one)


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


class Ansible:
    """``ansible-playbook`` from the venv: copy + unpack the tarball, switch the symlink."""

    def __init__(self, work: Path, hosts: Sequence[Host], key_file: Path, known_hosts: Path):
        self.work = work
        self.inventory = work / "ansible-inventory.yml"
        common = (
            f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null "
            "-o StrictHostKeyChecking=yes"
        )
        python = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "/usr/bin/python3"
        self.inventory.write_text(
            yaml.safe_dump(
                {
                    "web": {
                        "hosts": {
                            h.name: {
                                "ansible_host": h.address,
                                "ansible_port": h.port,
                                "ansible_user": h.user,
                                "ansible_ssh_private_key_file": str(key_file),
                                "ansible_ssh_common_args": common,
                                "ansible_python_interpreter": python,
                            }
                            for h in hosts
                        }
                    }
                }
            )
        )
        (work / "ansible-home").mkdir(exist_ok=True)
        remote_tmp = work / "ansible-remote-tmp"  # the hosts' login user writes it
        remote_tmp.mkdir(exist_ok=True)
        for user in {h.user for h in hosts}:
            shutil.chown(remote_tmp, user=user)
        self.env = dict(os.environ)
        self.env.update(
            {
                "ANSIBLE_HOME": str(work / "ansible-home"),
                "ANSIBLE_LOCAL_TEMP": str(work / "ansible-home" / "tmp"),
                "ANSIBLE_REMOTE_TEMP": str(remote_tmp),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "ansible-home" / "cp"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "false",
                "LC_ALL": "C.UTF-8",
            }
        )
        # the venv's own (python -m bench without `uv run` has no venv on PATH), else PATH's
        beside = Path(sys.executable).parent / "ansible-playbook"
        found = str(beside) if beside.is_file() else shutil.which("ansible-playbook")
        self.playbook_bin = found or ""

    @property
    def available(self) -> bool:
        return bool(self.playbook_bin)

    def deploy(self, forks: int | None, deploy_root: str, release: str, tarball: Path) -> None:
        argv = [self.playbook_bin, "-i", str(self.inventory), str(PLAYBOOK)]
        if forks is not None:
            argv += ["--forks", str(forks)]
        argv += [
            "-e",
            f"deploy_root={deploy_root}",
            "-e",
            f"release={release}",
            "-e",
            f"tarball={tarball}",
        ]
        run_argv(argv, env=self.env, cwd=self.work)


# -- Quayside --------------------------------------------------------------------------------


def flow_missing(module: str) -> str | None:
    """Why ``flows/<module>.py`` cannot be benchmarked, or None if it exists."""
    if not (PROJECT_DIR / "flows" / f"{module}.py").exists():
        return f"flows/{module}.py does not exist yet (the flow has not landed)"
    return None


def write_inventory(
    path: Path,
    hosts: Sequence[Host],
    key_file: Path,
    known_hosts: Path,
    mount: Path,
    repo: Path,
    apps: Sequence[str],
) -> None:
    """quayside.yaml with every host in group ``bench`` and one app per timed run (the same
    repo, deploy root ``<mount>/<app>``), so each run starts with a fresh deploy root and a
    clean ledger history."""
    inventory = {
        "version": 1,
        "hosts": {
            h.name: {
                "address": h.address,
                "port": h.port,
                "user": h.user,
                "key_file": str(key_file),
                "known_hosts": str(known_hosts),
            }
            for h in hosts
        },
        "groups": {"bench": [h.name for h in hosts]},
        "apps": {
            app: {
                "repo": str(repo),
                "deploy_root": f"{mount}/{app}",
                "environments": {
                    ENV: {
                        "groups": ["bench-cold" if app.startswith("cold-") else "bench"],
                        "max_parallel": len(hosts),
                    }
                },
            }
            for app in apps
        },
    }
    # the same hosts with no persisted SSH connection (apps named cold-*)
    hosts_map: dict[str, Any] = inventory["hosts"]  # type: ignore[assignment]
    for h in hosts:
        hosts_map[f"cold-{h.name}"] = {**hosts_map[h.name], "persist_s": 0}
    groups: dict[str, Any] = inventory["groups"]  # type: ignore[assignment]
    groups["bench-cold"] = [f"cold-{h.name}" for h in hosts]
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


class Quayside:
    """The flows called in-process against a real Prefect server (``quayside up``)."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        for key in (
            "PREFECT_API_URL",
            "PREFECT_HOME",
            "QUAYSIDE_HOME",
            "QUAYSIDE_INVENTORY",
            "QUAYSIDE_PREFECT_PORT",
            "QUAYSIDE_GATEWAY_PORT",
            "PREFECT_SERVER_ANALYTICS_ENABLED",
        ):
            os.environ[key] = platform.env[key]
        os.environ["PREFECT_API_AUTH_STRING"] = platform.auth_string
        os.environ.pop("QUAYSIDE_DATABASE_URL", None)
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        # as the platform's flow runs have it (quayside.stack.api_tls)
        ca = Path(platform.env["PREFECT_HOME"]) / "api-ca.pem"
        if ca.is_file():
            os.environ["PREFECT_API_SSL_CERT_FILE"] = str(ca)

    def deploy(self, app: str, ref: str) -> Any:
        from quayside.flows.git_deploy import git_deploy

        return asyncio.run(git_deploy(app=app, env=ENV, ref=ref, requested_by="bench"))

    def empty_flow_s(self, repeat: int, hosts: int) -> dict[str, list[float]]:
        """Wall seconds of flows that do nothing, called the same way: declared ``async`` (as
        Quayside's flows are) and plain ``def``; and an async flow whose body submits one
        no-op task per host, as the release flows do: the floor of any flow run here and the
        Prefect cost of per-host tasks."""
        from prefect import flow, task
        from prefect.cache_policies import NO_CACHE
        from prefect.futures import wait
        from prefect.task_runners import ThreadPoolTaskRunner

        from quayside.tasks.sync_body import run_sync_body

        @flow(name="bench-empty-async")
        async def empty_async() -> None:
            return None

        @flow(name="bench-empty-sync")
        def empty_sync() -> None:
            return None

        @task(name="bench-noop", cache_policy=NO_CACHE)
        def noop(host: str) -> str:
            return host

        def submit_noops(count: int) -> None:
            wait([noop.submit(f"host-{i}") for i in range(count)])

        @flow(name="bench-noop-tasks", task_runner=ThreadPoolTaskRunner(max_workers=50))  # type: ignore[arg-type]
        async def noop_tasks(count: int) -> None:
            await run_sync_body(submit_noops, count=count)

        out: dict[str, list[float]] = {"async": [], "sync": [], "tasks": []}
        # the empty flows first: right after a flow with 20 task runs the server is still
        # recording them, and the next flow run measures that too
        runs: list[tuple[str, Callable[[], Any]]] = [
            ("async", lambda: asyncio.run(empty_async())),
            ("sync", empty_sync),
            ("tasks", lambda: asyncio.run(noop_tasks(hosts))),
        ]
        for kind, call in runs:
            for _ in range(repeat):
                started = time.perf_counter()
                call()
                out[kind].append(round(time.perf_counter() - started, 3))
        return out

    def rollback(self, app: str) -> Any:
        from quayside.flows.rollback import rollback

        return asyncio.run(rollback(app=app, env=ENV, requested_by="bench"))

    def bytes_sent(self, app: str) -> list[int]:
        """release_hosts.bytes_sent of the app's current release, from the ledger."""
        from quayside.ledger.db import make_engine
        from quayside.ledger.releases import current_release

        engine = make_engine()
        try:
            release = current_release(engine, app, ENV)
            if release is None:
                return []
            return [h.bytes_sent for h in release.hosts if h.bytes_sent is not None]
        finally:
            engine.dispose()

    def worker_run(self, app: str, ref: str, timeout: float = 900) -> float:
        """Seconds from creating a run of the ``git-deploy`` deployment through the API until
        it is final (includes the worker's poll interval and flow process start-up)."""
        from quayside.runs import client

        start = time.perf_counter()
        handle = client.start_run(
            "git-deploy", {"app": app, "env": ENV, "ref": ref, "requested_by": "bench"}
        )
        deadline = start + timeout
        while time.perf_counter() < deadline:
            status = client.read_run(handle.id)
            if status.final:
                elapsed = time.perf_counter() - start
                if status.state_type != "COMPLETED":
                    raise RuntimeError(f"worker run ended {status.state_name}: {status.message}")
                return elapsed
            time.sleep(0.2)
        raise RuntimeError(f"worker run {handle.id} not final after {timeout} s")


# -- the benchmark ---------------------------------------------------------------------------


@contextmanager
def work_directory(options: Options) -> Iterator[Path]:
    options.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="git_deploy-", dir=options.work_dir))
    work.chmod(0o755)  # the hosts' login user reaches its key and deploy roots through it
    try:
        yield work
    finally:
        if options.keep:
            log(f"kept {work}")
        else:
            run_argv(["rm", "-rf", "--", str(work)])  # much faster than shutil.rmtree here


def empty_flow_figures(runs: dict[str, list[float]]) -> dict[str, float | None]:
    """Medians of the empty-flow runs, async (Quayside's flows) and sync."""
    return {
        "prefect_empty_flow_s": statistics.median(runs["async"]) if runs["async"] else None,
        "prefect_empty_sync_flow_s": statistics.median(runs["sync"]) if runs["sync"] else None,
        "prefect_flow_noop_task_per_host_s": (
            statistics.median(runs["tasks"]) if runs.get("tasks") else None
        ),
    }


def mount_tmpfs(path: Path) -> str | None:
    """Mount a tmpfs (half the machine's memory at most) on ``path``; why not, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None:
        return "no mount command"
    size_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 // 2**20
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=755", "quayside-bench", str(path)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else f"mount failed: {done.stderr.strip()[:200]}"


def per_host_bytes(timing: Timing) -> list[int]:
    return [b for output in timing.outputs if output for b in output]


def verify(hosts: Sequence[Host], roots: Roots, tree: Path) -> None:
    """Every host's ``current`` (in the current deploy root) holds ``tree``: the changed file's
    bytes on every host, the file count on the last one. A tool that did less would fail."""
    expected = (tree / CHANGED_FILE).read_bytes()
    for host in hosts:
        got = (roots.local(host) / "current" / CHANGED_FILE).read_bytes()
        if got != expected:
            raise AssertionError(f"{host.name}: current/{CHANGED_FILE} is not the expected one")
    last = roots.local(hosts[-1]) / "current"
    count = sum(1 for p in last.rglob("*.dat") if p.is_file())
    if count != FILES:
        raise AssertionError(f"{hosts[-1].name}: {count} data files in current, want {FILES}")


@dataclass(frozen=True)
class Spec:
    """A tool's key, table label and what its time includes."""

    key: str
    label: str
    includes: str


class Recorder:
    """Runs each tool's measurement unless skipped; a failure becomes a "not measured"
    reason (with the error) instead of ending the whole benchmark. ``after`` (untimed) runs
    after every tool, e.g. deleting its deploy roots."""

    def __init__(self, options: Options, after: Callable[[], Any] | None = None) -> None:
        self.options = options
        self.after = after

    def tool(
        self,
        spec: Spec,
        fn: Callable[[], Any],
        setup: Callable[[], Any] | None = None,
        check: Callable[[], Any] | None = None,
        unavailable: str | None = None,
    ) -> ToolResult:
        return self.steps([spec], [fn], setup, [check], unavailable)[0]

    def steps(
        self,
        specs: Sequence[Spec],
        steps: Sequence[Callable[[], Any]],
        setup: Callable[[], Any] | None = None,
        checks: Sequence[Callable[[], Any] | None] = (),
        unavailable: str | None = None,
    ) -> list[ToolResult]:
        """Steps that build on each other, each reported as its own tool (see
        :func:`bench.harness.measure_steps`)."""
        results = [ToolResult(key=s.key, label=s.label, includes=s.includes) for s in specs]
        keys = ", ".join(s.key for s in specs)
        if unavailable is not None:
            reason: str | None = unavailable
        elif any(s.key in self.options.skip for s in specs):
            reason = "skipped in this run (--skip)"
        else:
            reason = None
            log(f"  {keys}: {self.options.repeat} runs")
            try:
                timings = measure_steps(steps, self.options.repeat, setup, checks)
            except Exception as e:  # recorded as not measured
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                reason = f"failed in this run: {type(e).__name__}: {first[:300]}"
                log(f"  {keys}: FAILED: {e}")
            else:
                for result, timing in zip(results, timings, strict=True):
                    result.timing = timing
                    runs = ", ".join(f"{r:.2f}" for r in timing.runs_s)
                    log(f"  {result.key}: median {timing.median_s:.2f} s ({runs})")
            finally:
                if self.after is not None:
                    self.after()
        if reason is not None:
            for result in results:
                result.not_measured = reason
        return results


#: The results this module produces (``python -m bench <one of these>`` runs only that one).
RESULTS = ("git_deploy_fanout", "git_deploy_incremental", "git_deploy_rollback")


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Run the git deploy benchmarks named in ``parts`` (default all three); results.json
    entries by name. Incremental and rollback share their setup: per repetition the hosts get
    the first release (untimed), then the next release (timed: incremental), then the rollback
    to the first (timed: rollback)."""
    from testbed.sshd import DEPLOY_USER, SshdFleet

    repeat = options.repeat
    load_start = round(os.getloadavg()[0], 2)
    with ExitStack() as stack:
        work = stack.enter_context(work_directory(options))
        log(f"work directory {work}")
        log(f"generating the app: {FILES} files, {TOTAL_BYTES / 1e6:.0f} MB of random data")
        app = make_app(work)
        mount = work / "deploy"
        mount.mkdir()
        wrapper = sshd_wrapper(work / "sshd-ns", mount)
        disk_note = HOST_DISK_NOTE
        fleet_dir = work / "fleet"
        fleet_dir.mkdir()
        problem = mount_tmpfs(fleet_dir)
        if problem is None:
            stack.callback(run_argv, ["umount", "--lazy", str(fleet_dir)])
        else:
            disk_note = HOST_DISK_FALLBACK_NOTE.format(reason=problem)
            log(f"hosts on the disk: {problem}")
        log(f"starting {options.hosts} sshd hosts")
        fleet = SshdFleet(fleet_dir, options.hosts, sshd=str(wrapper), login=DEPLOY_USER)
        stack.callback(fleet.close)
        hosts = [
            Host(
                name=h.name,
                address=h.address,
                port=h.port,
                user=h.user,
                ssh_argv=executor.ssh_argv(),
                root=h.root,
                bulk_ssh_argv=tuple(executor.ssh_argv(bulk=True)),
            )
            for h in fleet
            for executor in [
                SSHExecutor(h.name, h.address, h.port, h.user, h.key_file, h.known_hosts)
            ]
        ]
        roots = Roots(mount, hosts)
        base = Baselines(hosts, roots, app)
        ansible = Ansible(work, hosts, fleet.key_file, fleet.known_hosts)
        rec = Recorder(options, after=roots.purge)

        quayside: Quayside | None = None
        quayside_reason = flow_missing("git_deploy")
        if quayside_reason is None and "quayside" not in options.skip:
            from testbed.platform import Platform

            apps = [f"{kind}-{i}" for kind in ("fanout", "incr", "cold") for i in range(repeat)]
            apps += ["worker-0", "warmup-0"]
            inventory = work / "quayside.yaml"
            write_inventory(
                inventory, hosts, fleet.key_file, fleet.known_hosts, mount, app.repo, apps
            )
            platform = Platform(work / "quayside-home", inventory)
            stack.callback(platform.stop)
            log("starting the platform (quayside up: Prefect server, worker, gateway)")
            started = time.perf_counter()
            try:
                platform.start()
            except Exception as e:
                quayside_reason = f"the platform did not start: {str(e).strip()[:300]}"
            else:
                log(f"platform up in {time.perf_counter() - started:.1f} s")
                quayside = Quayside(platform)
        no_ansible = None if ansible.available else "ansible-playbook not found in the venv"

        def check(tree: Path) -> Callable[[], None]:
            return lambda: verify(hosts, roots, tree)

        fanout: list[ToolResult] = []
        prepare_waits: list[float] = []
        incremental: list[ToolResult] = []
        empty_runs: dict[str, list[float]] = {"async": [], "sync": [], "tasks": []}
        floor: ToolResult | None = None
        rollback: list[ToolResult] = []
        worker_s: float | None = None
        worker_reason = quayside_reason

        # -- first deploy ------------------------------------------------------------------
        if "git_deploy_fanout" in parts:
            log("git_deploy_fanout: first deploy of the app to every host")
            fanout_app = AppNames("fanout")

            def quayside_fanout() -> Any:
                assert quayside is not None
                return quayside.deploy(roots.label, TAG_V1)

            fanout = [
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
                    check=check(app.v1_tree),
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
                    check=check(app.v1_tree),
                ),
                rec.tool(
                    Spec(
                        "parallel_rsync",
                        f"{len(hosts)} rsyncs in parallel",
                        "the same rsync + ssh switch per host, every host at once (one thread "
                        "each)",
                    ),
                    base.parallel_v1,
                    setup=lambda: roots.new("parallel"),
                    check=check(app.v1_tree),
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
                    check=check(app.v1_tree),
                    unavailable=no_ansible,
                ),
                rec.tool(
                    Spec("ansible_forks20", "Ansible, forks=20", "the same playbook, `--forks 20`"),
                    lambda: ansible.deploy(20, roots.path, base.v1, app.v1_tarball),
                    setup=lambda: roots.new("ansible20"),
                    check=check(app.v1_tree),
                    unavailable=no_ansible,
                ),
            ]
            if quayside is not None:
                log("  quayside worker path: one run through the API and the process worker")
                roots.use("worker-0")
                try:
                    worker_s = round(quayside.worker_run("worker-0", TAG_V1), 3)
                    verify(hosts, roots, app.v1_tree)
                    log(f"  worker path: {worker_s:.2f} s")
                except Exception as e:
                    worker_s = None
                    worker_reason = f"failed in this run: {str(e).strip()[:300]}"
                    log(f"  worker path FAILED: {e}")
                roots.purge()

        # -- one changed file, then rollback -----------------------------------------------
        if "git_deploy_incremental" in parts or "git_deploy_rollback" in parts:
            log("git_deploy_incremental + git_deploy_rollback: next release, then back")
            incr_app = AppNames("incr")
            if quayside is not None:
                log("  (untimed: one release and the next to another app - see MIRROR_NOTE)")
                roots.use("warmup-0")
                quayside.deploy("warmup-0", TAG_V1)
                quayside.deploy("warmup-0", TAG_V2)
                roots.purge()

            def quayside_setup() -> None:
                assert quayside is not None
                quayside.deploy(roots.use(incr_app.next()).rsplit("/", 1)[1], TAG_V1)
                prepare_waits.append(round(roots.wait_prepared(), 3))

            def quayside_incr() -> list[int]:
                assert quayside is not None
                result = quayside.deploy(roots.label, TAG_V2)
                sent = quayside.bytes_sent(roots.label)
                if not sent and isinstance(result, dict):
                    reported = result.get("bytes_sent")  # the flow's own per-host report
                    if isinstance(reported, dict):
                        sent = [int(b) for b in reported.values()]
                return sent

            def quayside_rollback() -> Any:
                assert quayside is not None
                return quayside.rollback(roots.label)

            def rsync_setup() -> None:
                roots.new("linkdest")
                base.parallel_v1()

            rollback_reason = quayside_reason or flow_missing("rollback")
            q_specs = [
                Spec(
                    "quayside",
                    "Quayside `git_deploy` flow",
                    "as in the first deploy, for the next tag with one file changed; the hosts "
                    "hold the previous release (deployed by Quayside, not timed)",
                ),
                Spec(
                    "quayside",
                    "Quayside `rollback` flow",
                    "the flow called in-process: ledger lookup of the previous release, switch "
                    "`current` on every host in parallel, hooks/health (none configured), a "
                    "ledger release of kind rollback",
                ),
            ]
            if quayside is not None and rollback_reason is None:
                q_incr, q_rb = rec.steps(
                    q_specs,
                    [quayside_incr, quayside_rollback],
                    setup=quayside_setup,
                    checks=[check(app.v2_tree), check(app.v1_tree)],
                )
            else:
                (q_incr,) = rec.steps(
                    q_specs[:1],
                    [quayside_incr],
                    setup=quayside_setup,
                    checks=[check(app.v2_tree)],
                    unavailable=None if quayside else quayside_reason,
                )
                rb = q_specs[1]
                q_rb = ToolResult(
                    rb.key,
                    rb.label,
                    rb.includes,
                    not_measured=rollback_reason or "skipped in this run (--skip)",
                )
            r_incr, r_rb = rec.steps(
                [
                    Spec(
                        "parallel_rsync_link_dest",
                        f"{len(hosts)} × `rsync --link-dest` in parallel",
                        "every host at once: `rsync -a --link-dest=<previous release>` of the "
                        "new tree into a new releases/<id> (unchanged files become hard links), "
                        "then the ssh symlink switch",
                    ),
                    Spec(
                        "ssh_loop_parallel",
                        f"{len(hosts)} × ssh symlink switch in parallel",
                        "one ssh per host, all at once, running the atomic switch back to the "
                        "previous release directory",
                    ),
                ],
                [base.parallel_v2_link_dest, base.parallel_switch_to_v1],
                setup=rsync_setup,
                checks=[check(app.v2_tree), check(app.v1_tree)],
            )
            cold_app = AppNames("cold")

            def cold_setup() -> None:
                assert quayside is not None
                quayside.deploy(roots.use(cold_app.next()).rsplit("/", 1)[1], TAG_V1)
                roots.wait_prepared()

            q_cold = rec.tool(
                Spec(
                    "quayside_cold",
                    "Quayside `git_deploy` flow, no persisted SSH connections",
                    "the same release to the same hosts listed with `persist_s: 0`: one new "
                    "SSH connection (paramiko) per host, as for a release more than 60 s "
                    "after the last command to those hosts",
                ),
                quayside_incr,
                setup=cold_setup,
                check=check(app.v2_tree),
                unavailable=None if quayside else quayside_reason,
            )
            incremental = [q_incr, q_cold, r_incr]
            rollback = [q_rb, r_rb]
            floor = rec.tool(
                Spec(
                    "one_trip_floor",
                    f"{len(hosts)} × one ssh round trip in parallel",
                    "context, not a ratio: see FLOOR_NOTE",
                ),
                base.parallel_one_trip_v2,
                setup=lambda: (roots.new("floor"), base.parallel_v1()),
                check=check(app.v2_tree),
            )
            if quayside is not None:
                empty_runs = quayside.empty_flow_s(repeat, len(hosts))
                log(f"  an empty Prefect flow: {empty_runs} s")

        changed_size = (app.v2_tree / CHANGED_FILE).stat().st_size
        quayside_bytes = [
            b
            for t in incremental
            if t.key == "quayside" and t.timing
            for b in per_host_bytes(t.timing)
        ]
        rsync_bytes = [
            b
            for t in incremental
            if t.key == "parallel_rsync_link_dest" and t.timing
            for b in per_host_bytes(t.timing)
        ]

    machine = machine_info()
    common_notes = [
        LOGIN_NOTE,
        LOG_LEVEL_NOTE,
        LOOPBACK_NOTE.format(cores=machine.get("cores")),
        disk_note,
        "Each sshd runs in its own mount namespace with its own directory bind-mounted on one "
        "common deploy root path, so every tool (Quayside included) sees one `deploy_root` "
        "and independent hosts, as in production.",
        "Every timed run deploys into a new, empty deploy root on every host (a new app "
        "name in the inventory for Quayside, with a clean ledger history); old roots are "
        "deleted between tools, untimed.",
    ]
    app_text = (
        f"{app.files:,} files, {app.total_bytes / 1e6:.0f} MB of incompressible data "
        f"(os.urandom, deterministic layout) in a git repository with tags {TAG_V1} and "
        f"{TAG_V2}, deployed to {len(hosts)} sshd hosts on loopback"
    )
    extra_fanout: dict[str, Any] = {
        "hosts": len(hosts),
        "files": app.files,
        "bytes": app.total_bytes,
        "quayside_worker_path_s": worker_s,
        "load_avg_1m": {"start": load_start, "end": machine.get("load_avg_1m")},
    }
    fanout_notes = [
        "`quayside_worker_path_s` (context, one run, not in the ratios): the same first deploy "
        "started as a run of the `git-deploy` deployment through the Prefect API and executed "
        "by `quayside up`'s process worker, timed until the run is final: it adds the worker's "
        "poll interval (1 s here) and a new Python process for the flow run."
        + ("" if worker_s is not None else f" Not measured: {worker_reason}."),
        TRANSFER_NOTE,
        *common_notes,
    ]
    bytes_text = {
        "quayside": _mean(quayside_bytes),
        "parallel_rsync_link_dest": _mean(rsync_bytes),
    }
    entries = {
        "git_deploy_fanout": make_entry(
            fanout,
            title="Git deploy: first release to every host",
            description=f"First deploy of {app_text}. Baselines: a serial per-host loop, "
            "parallel rsync and Ansible.",
            command=COMMAND,
            repeat=repeat,
            extra=extra_fanout,
            notes=fanout_notes,
            machine=machine,
        ),
        "git_deploy_incremental": make_entry(
            incremental,
            title="Git deploy: a release with one changed file",
            description=f"The next tag of the same app ({CHANGED_FILE} rewritten, "
            f"{changed_size:,} bytes) on hosts that hold the "
            "previous release.",
            command=COMMAND,
            repeat=repeat,
            extra={
                "hosts": len(hosts),
                "changed_files": 1,
                "bytes_sent_per_host": bytes_text,
                "bytes_sent_per_host_max": {
                    "quayside": max(quayside_bytes) if quayside_bytes else None,
                    "parallel_rsync_link_dest": max(rsync_bytes) if rsync_bytes else None,
                },
                **empty_flow_figures(empty_runs),
                "host_work_floor_s": (
                    round(floor.timing.median_s, 3) if floor and floor.timing else None
                ),
                "host_work_floor_runs_s": (
                    [round(r, 3) for r in floor.timing.runs_s] if floor and floor.timing else None
                ),
                "quayside_hosts_prepared_after_s": prepare_waits,
                "parallel_rsync_link_dest_vs_quayside_cold": _ratio_between(
                    incremental, "parallel_rsync_link_dest", "quayside_cold"
                ),
            },
            notes=[
                PREPARED_NOTE,
                WARM_NOTE,
                FLOOR_NOTE
                + (
                    ""
                    if floor is None or floor.not_measured is None
                    else f" Not measured: {floor.not_measured}."
                ),
                EMPTY_FLOW_NOTE,
                BACK_TO_BACK_NOTE,
                MIRROR_NOTE,
                "`bytes_sent_per_host`: mean over hosts and runs. Quayside's comes from the "
                "ledger (release_hosts.bytes_sent of the release); rsync's is \"Total bytes "
                'sent" of its `--stats` (rsync protocol bytes, before SSH framing).',
                *common_notes,
            ],
            machine=machine,
        ),
        "git_deploy_rollback": make_entry(
            rollback,
            title="Rollback of every host to the previous release",
            description=f"Hosts hold {TAG_V1} and {TAG_V2} with `current` on {TAG_V2}; switch "
            f"back to {TAG_V1} on all {len(hosts)} hosts.",
            command=COMMAND,
            repeat=repeat,
            extra={
                "hosts": len(hosts),
                **empty_flow_figures(empty_runs),
            },
            notes=[EMPTY_FLOW_NOTE, BACK_TO_BACK_NOTE, *common_notes],
            machine=machine,
        ),
    }
    return {name: entry for name, entry in entries.items() if name in parts}


def _ratio_between(tools: Sequence[ToolResult], slow: str, fast: str) -> float | None:
    """``slow``'s median over ``fast``'s, when both were measured."""
    by_key = {t.key: t for t in tools}
    a, b = by_key.get(slow), by_key.get(fast)
    if a is None or b is None or a.timing is None or b.timing is None:
        return None
    return round(a.timing.median_s / b.timing.median_s, 2)


def _mean(values: list[int]) -> int | None:
    return round(statistics.mean(values)) if values else None


class AppNames:
    """``<kind>-0``, ``<kind>-1``, ...: one inventory app per timed Quayside run."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.index = -1

    def next(self) -> str:
        self.index += 1
        return self.current

    @property
    def current(self) -> str:
        return f"{self.kind}-{self.index}"
