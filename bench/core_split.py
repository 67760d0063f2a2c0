"""Two machines' shape on one: the platform host's processes on one set of cores, the worker
host's (and the target hosts') on the other, by CPU affinity (``os.sched_setaffinity``).

The production stack (infra/compose) puts the Prefect API server, its services, PostgreSQL,
Redis and the gateway on a platform host, and the workers -- whose flow-run processes take the
CPU a release needs -- on worker hosts; the release's target hosts are other machines again.
On a 2-core benchmark machine every process shares both cores, so the API server's reads wait
for CPU the runs take. ``split`` gives the platform host core 0 and everything a run executes
(workers, fork servers, their flow-run processes and tools, the targets' sshd) core 1; a child
inherits its parent's affinity, so processes started later follow.

Affinity belongs to a thread, not a process: ``sched_setaffinity(pid)`` moves only the thread
whose id is ``pid``, and a thread started earlier keeps the cores it had. The stack's processes
already run threads when the split is made (the API server's, a worker's event client), so
:func:`split` pins every thread of each process (``/proc/<pid>/task``); a thread started later
inherits the affinity of the thread that starts it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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


def threads(pid: int) -> list[int]:
    """The thread ids of process ``pid`` (its own id first); ``[pid]`` if /proc cannot say."""
    try:
        tids = sorted(int(t.name) for t in Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return [pid]
    return [pid, *(t for t in tids if t != pid)]


def _pin(pids: Iterable[int], cores: set[int]) -> int:
    """Pin every thread of each of ``pids``; returns how many processes were pinned."""
    pinned = 0
    for pid in pids:
        try:
            os.sched_setaffinity(pid, cores)
        except (ProcessLookupError, PermissionError):
            continue  # gone, or not ours
        pinned += 1
        for tid in threads(pid)[1:]:
            try:
                os.sched_setaffinity(tid, cores)
            except (ProcessLookupError, PermissionError):
                pass  # the thread ended meanwhile
    return pinned


@dataclass(frozen=True)
class Sides:
    """The cores of each side of the split."""

    platform: frozenset[int]
    worker: frozenset[int]


def sides(platform_core: int | None = None) -> Sides:
    """The platform core (default: the lowest core this thread may use) and the worker side's
    cores (the rest). Ask before :func:`split`: it pins this process to the platform core.

    Raises:
        RuntimeError: fewer than 2 cores to split.
    """
    cores = set(os.sched_getaffinity(0))
    if platform_core is None:
        platform_core = min(cores)
    worker_cores = cores - {platform_core}
    if not worker_cores:
        raise RuntimeError("core split needs at least 2 cores")
    return Sides(frozenset({platform_core}), frozenset(worker_cores))


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
    cores = sides(platform_core)
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
        "platform": _pin(platform_side, set(cores.platform)),
        "worker": _pin(worker_side, set(cores.worker)),
    }
