"""Two machines' shape on one: the platform host's processes on one set of cores, the worker
host's (and the target hosts') on the other, by CPU affinity (``os.sched_setaffinity``).

The production stack (infra/compose) puts the Prefect API server, its services, PostgreSQL,
Redis and the gateway on a platform host, and the workers -- whose flow-run processes take the
CPU a release needs -- on worker hosts; the release's target hosts are other machines again.
On a 2-core benchmark machine every process shares both cores, so the API server's reads wait
for CPU the runs take. ``split`` gives the platform host core 0 and everything a run executes
(workers, fork servers, their flow-run processes and tools, the targets' sshd) core 1; a child
inherits its parent's affinity, so processes started later follow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

#: command-line parts of the processes that belong on the worker side (with their children)
WORKER_SIDE = ("quayside.stack.worker", "quayside.stack.forkserver", "sshd")


def process_tree() -> tuple[dict[int, list[int]], dict[int, str]]:
    """Children by parent pid, and each process's command line (from /proc)."""
    children: dict[int, list[int]] = {}
    cmdline: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        cmdline[int(entry.name)] = cmd
    return children, cmdline


def _descendants(root: int, children: dict[int, list[int]]) -> Iterator[int]:
    for child in children.get(root, []):
        yield child
        yield from _descendants(child, children)


def _pin(pids: Iterable[int], cores: set[int]) -> int:
    pinned = 0
    for pid in pids:
        try:
            os.sched_setaffinity(pid, cores)
            pinned += 1
        except (ProcessLookupError, PermissionError):
            pass  # gone, or not ours
    return pinned


def split(
    roots: Iterable[int] | None = None, *, platform_core: int | None = None
) -> dict[str, int]:
    """Pin the process trees of ``roots`` (default: this process; add daemons that left it,
    such as PostgreSQL's postmaster) to ``platform_core`` (default: the lowest core this
    process may use), except the worker side
    (:data:`WORKER_SIDE` and their descendants), pinned to the other cores.

    Returns:
        How many processes each side got.
    """
    cores = set(os.sched_getaffinity(0))
    if platform_core is None:
        platform_core = min(cores)
    worker_cores = cores - {platform_core}
    if not worker_cores:
        raise RuntimeError("core split needs at least 2 cores")
    children, cmdline = process_tree()
    everything: list[int] = []
    for root in [os.getpid()] if roots is None else roots:
        everything += [root, *_descendants(root, children)]
    worker_side: set[int] = set()
    for pid in everything:
        if any(part in cmdline.get(pid, "") for part in WORKER_SIDE):
            worker_side.add(pid)
            worker_side.update(_descendants(pid, children))
    platform_side = [pid for pid in everything if pid not in worker_side]
    return {
        "platform": _pin(platform_side, {platform_core}),
        "worker": _pin(worker_side, worker_cores),
    }
