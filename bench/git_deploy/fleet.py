"""The hosts every tool deploys to: real sshd processes on 127.0.0.11, .12, ...
(:class:`testbed.sshd.SshdFleet`), their deploy roots on a tmpfs where the machine allows it.

The hosts share this machine's filesystem, so each sshd runs in its own mount namespace where
its own deploy root is bind-mounted over one common path: every tool, Quayside included, sees
one ``deploy_root`` and independent hosts, as in production.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.harness import Options, log, run_argv
from quayside.commands.rsync import remote_dest
from quayside.executors.ssh import SSHExecutor, remote_command

T = TypeVar("T")

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


@dataclass(frozen=True)
class Fleet:
    """The started hosts and what every tool needs to reach them.

    Attributes:
        hosts: one per sshd, in address order.
        mount: the deploy-root path every host sees (its own directory bound over it).
        key_file: the client key every tool logs in with.
        known_hosts: the hosts' keys, for strict host key checking.
        tmpfs_problem: why the deploy roots are on the disk instead of a tmpfs, or None.
    """

    hosts: list[Host]
    mount: Path
    key_file: Path
    known_hosts: Path
    tmpfs_problem: str | None


def start_fleet(
    stack: ExitStack, work: Path, count: int, first_address: str = "127.0.0.11"
) -> Fleet:
    """Start ``count`` namespaced sshd hosts under ``work`` (stopped, and the tmpfs
    unmounted, when ``stack`` closes); they log in as the deploy user, not as root."""
    from testbed.sshd import DEPLOY_USER, SshdFleet

    mount = work / "deploy"
    mount.mkdir()
    wrapper = sshd_wrapper(work / "sshd-ns", mount)
    fleet_dir = work / "fleet"
    fleet_dir.mkdir()
    problem = mount_tmpfs(fleet_dir)
    if problem is None:
        stack.callback(run_argv, ["umount", "--lazy", str(fleet_dir)])
    else:
        log(f"hosts on the disk: {problem}")
    log(f"starting {count} sshd hosts")
    fleet = SshdFleet(fleet_dir, count, first_address, sshd=str(wrapper), login=DEPLOY_USER)
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
        for executor in [SSHExecutor(h.name, h.address, h.port, h.user, h.key_file, h.known_hosts)]
    ]
    return Fleet(hosts, mount, fleet.key_file, fleet.known_hosts, problem)


def each_host(hosts: Sequence[Host], fn: Callable[[Host], T]) -> list[T]:
    """``fn`` on every host at once (one thread each), results in host order."""
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(fn, hosts))


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


@contextmanager
def work_directory(options: Options, prefix: str = "git_deploy-") -> Iterator[Path]:
    """A scratch directory under ``options.work_dir``, deleted afterwards unless ``--keep``."""
    options.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=options.work_dir))
    work.chmod(0o755)  # the hosts' login user reaches its key and deploy roots through it
    try:
        yield work
    finally:
        if options.keep:
            log(f"kept {work}")
        else:
            run_argv(["rm", "-rf", "--", str(work)])  # much faster than shutil.rmtree here
